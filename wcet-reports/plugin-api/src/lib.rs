//! Hand-written FFI for the QEMU TCG plugin API calls Prism's plugins use
//! (`cache-model`, `profile`), in every generation of them QEMU has had
//! since 7.2, resolved at install time with `dlsym` from the QEMU
//! executable (so the crates link without QEMU and the host tests never
//! touch it). One copy of the bindings; each plugin adds the calls only it
//! needs through [`resolve`].
//!
//! # One build for every API generation
//!
//! QEMU reads the plugin's exported `qemu_plugin_version` right after
//! `dlopen` and refuses a version outside its `min..=cur`. A constructor in
//! `.init_array`, which `dlopen` runs before QEMU reads the symbol, looks at
//! which calls the QEMU executable exports ([`Generation::detect`]) and sets
//! the version to the generation found ([`declare_plugin!`]). So one
//! build loads on QEMU 7.2 (API 1) as on 10.x (API 4, minimum 2).
//!
//! The bindings are hand-written rather than the `qemu-plugin` crate, which
//! is GPL-2.0 (this project is MIT OR Apache-2.0) and fixes one API version
//! per build.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::OnceLock;

use abi::marker::Marker;

pub type PluginId = u64;
pub type MemInfo = u32;

#[repr(C)]
pub struct Opaque {
    _private: [u8; 0],
}

/// `qemu_info_t` (the `system` member of the union only); the same layout
/// in every API version so far.
#[repr(C)]
pub struct QemuInfo {
    pub target_name: *const c_char,
    pub version_min: c_int,
    pub version_cur: c_int,
    pub system_emulation: bool,
    pub smp_vcpus: c_int,
    pub max_vcpus: c_int,
}

/// `qemu_plugin_u64` (API 2+): one `u64` of a scoreboard entry, by value.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PluginU64 {
    pub score: *mut Opaque,
    pub offset: usize,
}

pub type TbTransCb = extern "C" fn(PluginId, *mut Opaque);
pub type UdataCb = extern "C" fn(PluginId, *mut c_void);
pub type VcpuUdataCb = extern "C" fn(c_uint, *mut c_void);
pub type MemCb = extern "C" fn(c_uint, MemInfo, u64, *mut c_void);

// enum values from qemu-plugin.h, unchanged from API 1 to 4
pub const CB_NO_REGS: c_int = 0;
pub const MEM_RW: c_int = 3;
pub const INLINE_ADD_U64: c_int = 0;

/// A generation of the plugin API, as far as the calls used here go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// API 1 (QEMU 7.2 to 8.2): inline ops on a plain counter
    /// (`qemu_plugin_register_vcpu_insn_exec_inline`); `qemu_plugin_insn_data`
    /// returns a pointer to the bytes.
    V1,
    /// API 2 (QEMU 9.0): inline ops on scoreboard entries
    /// (`..._insn_exec_inline_per_vcpu`); the old inline calls are gone and
    /// QEMU's minimum is 2; `qemu_plugin_insn_data` still returns a pointer.
    V2,
    /// API 3 and later (QEMU 9.1 to 10.x): as V2, but `qemu_plugin_insn_data`
    /// copies the bytes into a buffer.
    V3,
}

impl Generation {
    /// The API version a plugin declares for the generation.
    pub fn api(self) -> i32 {
        match self {
            Generation::V1 => 1,
            Generation::V2 => 2,
            Generation::V3 => 3,
        }
    }

    /// The generation a QEMU serves, from calls that came (or went) with
    /// each; `exports` tells whether the QEMU executable exports a symbol.
    pub fn detect(exports: impl Fn(&str) -> bool) -> Option<Generation> {
        if exports("qemu_plugin_register_vcpu_insn_exec_cond_cb") {
            Some(Generation::V3)
        } else if exports("qemu_plugin_scoreboard_new") {
            Some(Generation::V2)
        } else if exports("qemu_plugin_register_vcpu_insn_exec_inline") {
            Some(Generation::V1)
        } else {
            None
        }
    }

    /// The generation of the QEMU executable that loaded us.
    pub fn of_this_qemu() -> Option<Generation> {
        Generation::detect(|n| exported(n).is_some())
    }
}

/// What the README and the refusals name as supported.
pub const SUPPORTED: &str = "plugin API 1 (QEMU 7.2 to 8.2), 2 (QEMU 9.0) and 3 or later while QEMU keeps accepting 3 \
     (QEMU 9.1 to 10.x; tested: 7.2 and 10.0)";

/// `qemu_plugin_insn_data` in its two forms.
pub enum InsnData {
    /// API 1 and 2: a pointer to the instruction's bytes.
    Pointer(unsafe extern "C" fn(*const Opaque) -> *const c_void),
    /// API 3+: copies up to `len` bytes into `dest`, returns how many.
    Copy(unsafe extern "C" fn(*const Opaque, *mut c_void, usize) -> usize),
}

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// `RTLD_DEFAULT` on glibc: search the global scope (the QEMU executable).
const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

/// The address QEMU exports under `name`, if any.
pub fn exported(name: &str) -> Option<*mut c_void> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is NUL-terminated and dlsym only reads it.
    let p = unsafe { dlsym(RTLD_DEFAULT, c.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// QEMU's function `name` as a function pointer of type `F`.
///
/// # Safety
/// `F` must be the C prototype of `name` in the QEMU that runs us.
pub unsafe fn resolve<F: Copy>(name: &str) -> Result<F, String> {
    let p = exported(name).ok_or_else(|| {
        format!("QEMU does not export `{name}`; is this a QEMU built with TCG plugin support? ({SUPPORTED})")
    })?;
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: same size (checked above), and the caller guarantees that the
    // address is a function of type `F`.
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

/// The calls every Prism plugin uses: translation and exit callbacks, the
/// instructions of a block, and per-instruction exec callbacks.
pub struct Core {
    pub generation: Generation,
    pub register_vcpu_tb_trans_cb: unsafe extern "C" fn(PluginId, TbTransCb),
    pub register_atexit_cb: unsafe extern "C" fn(PluginId, UdataCb, *mut c_void),
    pub tb_n_insns: unsafe extern "C" fn(*const Opaque) -> usize,
    pub tb_get_insn: unsafe extern "C" fn(*const Opaque, usize) -> *mut Opaque,
    pub insn_size: unsafe extern "C" fn(*const Opaque) -> usize,
    pub insn_vaddr: unsafe extern "C" fn(*const Opaque) -> u64,
    pub insn_data: InsnData,
    pub register_vcpu_insn_exec_cb: unsafe extern "C" fn(*mut Opaque, VcpuUdataCb, c_int, *mut c_void),
}

// SAFETY: `Core` holds function addresses of QEMU, valid for the life of
// the process; nothing in it changes after install.
unsafe impl Send for Core {}
// SAFETY: as above.
unsafe impl Sync for Core {}

impl Core {
    /// Resolves every call for `generation`, whose prototypes are the ones
    /// spelled in the field types.
    ///
    /// # Safety
    /// QEMU must serve `generation` (see [`Generation::detect`]).
    pub unsafe fn resolve(generation: Generation) -> Result<Core, String> {
        // SAFETY (every call below): each name is resolved to the type of
        // the field it fills, which is its prototype in qemu-plugin.h of the
        // generation's API versions.
        unsafe {
            let insn_data = match generation {
                Generation::V1 | Generation::V2 => InsnData::Pointer(resolve("qemu_plugin_insn_data")?),
                Generation::V3 => InsnData::Copy(resolve("qemu_plugin_insn_data")?),
            };
            Ok(Core {
                generation,
                register_vcpu_tb_trans_cb: resolve("qemu_plugin_register_vcpu_tb_trans_cb")?,
                register_atexit_cb: resolve("qemu_plugin_register_atexit_cb")?,
                tb_n_insns: resolve("qemu_plugin_tb_n_insns")?,
                tb_get_insn: resolve("qemu_plugin_tb_get_insn")?,
                insn_size: resolve("qemu_plugin_insn_size")?,
                insn_vaddr: resolve("qemu_plugin_insn_vaddr")?,
                insn_data,
                register_vcpu_insn_exec_cb: resolve("qemu_plugin_register_vcpu_insn_exec_cb")?,
            })
        }
    }

    /// Registers a plugin's translation and exit callbacks.
    ///
    /// # Safety
    /// `id` must be the id QEMU passed to this plugin's `qemu_plugin_install`.
    pub unsafe fn register(&self, id: PluginId, on_tb_trans: TbTransCb, on_exit: UdataCb) {
        // SAFETY: the caller's id; the callbacks are `extern "C"` functions
        // of the prototypes the API expects, living as long as the library.
        unsafe {
            (self.register_vcpu_tb_trans_cb)(id, on_tb_trans);
            (self.register_atexit_cb)(id, on_exit, std::ptr::null_mut());
        }
    }

    /// The 8 bytes of `insn` if it is 8 bytes long.
    ///
    /// # Safety
    /// `insn` must be a live instruction handle of the current translation.
    pub unsafe fn insn_bytes8(&self, insn: *const Opaque) -> Option<[u8; 8]> {
        // SAFETY: the caller passes a live handle; QEMU's bytes are valid
        // until the translation callback returns and we copy them out now.
        unsafe {
            if (self.insn_size)(insn) != 8 {
                return None;
            }
            let mut b = [0u8; 8];
            match self.insn_data {
                InsnData::Pointer(f) => {
                    let p = f(insn).cast::<u8>();
                    if p.is_null() {
                        return None;
                    }
                    b.copy_from_slice(std::slice::from_raw_parts(p, 8));
                }
                InsnData::Copy(f) => {
                    if f(insn, b.as_mut_ptr().cast(), 8) != 8 {
                        return None;
                    }
                }
            }
            Some(b)
        }
    }

    /// The [`abi::marker`] instruction `insn` is, if it is one.
    ///
    /// # Safety
    /// As [`Core::insn_bytes8`].
    pub unsafe fn marker(&self, insn: *const Opaque) -> Option<Marker> {
        // SAFETY: the caller's guarantee.
        unsafe { self.insn_bytes8(insn) }.and_then(|b| Marker::decode(&b))
    }
}

/// What a plugin needs from `qemu_info_t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// `target_name`.
    pub target: String,
    /// Oldest plugin API version QEMU accepts.
    pub version_min: i32,
    /// Current plugin API version of QEMU.
    pub version_cur: i32,
    /// Full-system emulation (as opposed to linux-user).
    pub system: bool,
    /// Initial vCPU count.
    pub smp_vcpus: i32,
}

impl HostInfo {
    /// Reads QEMU's `qemu_info_t`.
    ///
    /// # Safety
    /// `info` must be the `qemu_info_t` QEMU passed to `qemu_plugin_install`.
    pub unsafe fn of(info: &QemuInfo) -> HostInfo {
        let target = if info.target_name.is_null() {
            String::new()
        } else {
            // SAFETY: QEMU passes a NUL-terminated target name that lives at
            // least for the duration of qemu_plugin_install.
            unsafe { CStr::from_ptr(info.target_name) }.to_string_lossy().into_owned()
        };
        HostInfo {
            target,
            version_min: info.version_min,
            version_cur: info.version_cur,
            system: info.system_emulation,
            smp_vcpus: info.smp_vcpus,
        }
    }

    /// The checks every Prism plugin needs: a generation this crate knows
    /// that QEMU accepts, full-system x86 emulation (markers are x86
    /// instructions) on one vCPU (a job window is one vCPU's, and the cache
    /// model simulates one core's caches).
    pub fn check(&self, generation: Option<Generation>) -> Result<Generation, String> {
        let offered = format!("this QEMU offers plugin API {}..={}", self.version_min, self.version_cur);
        let Some(g) = generation else {
            return Err(format!(
                "{offered} but exports none of the calls of a generation this plugin knows; supported: {SUPPORTED}"
            ));
        };
        if !(self.version_min..=self.version_cur).contains(&g.api()) {
            return Err(format!(
                "{offered}; its calls look like API {} ({g:?}), which it does not accept; supported: {SUPPORTED}",
                g.api()
            ));
        }
        if !self.system {
            return Err("needs full-system emulation (qemu-system-x86_64): user-mode has no physical addresses".into());
        }
        if self.target != "x86_64" && self.target != "i386" {
            return Err(format!(
                "job markers are x86 instructions; target `{}` is not supported (use qemu-system-x86_64)",
                self.target
            ));
        }
        if self.smp_vcpus != 1 {
            return Err(format!(
                "Prism's plugins follow one vCPU (its job windows, one core's caches); run QEMU with -smp 1 (got {} vCPUs)",
                self.smp_vcpus
            ));
        }
        Ok(g)
    }
}

/// The body of every plugin's `qemu_plugin_install` (the one
/// [`declare_plugin!`] writes): reads QEMU's arguments and `qemu_info_t`,
/// checks the host ([`HostInfo::check`] on the generation this QEMU
/// exports) and runs the plugin's own install function `plugin` on them;
/// an error is printed as `NAME: error: ...` and refuses the plugin (QEMU
/// then stops).
///
/// # Safety
/// `info` must be null or the `qemu_info_t` QEMU passed, and `argv` must
/// hold `argc` valid NUL-terminated strings.
pub unsafe fn install(
    name: &str,
    id: PluginId,
    info: *const QemuInfo,
    argc: c_int,
    argv: *const *const c_char,
    plugin: impl FnOnce(PluginId, &HostInfo, Generation, &[String]) -> Result<(), String>,
) -> c_int {
    let mut args = Vec::new();
    for i in 0..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: the caller's guarantee.
        let a = unsafe { CStr::from_ptr(*argv.add(i)) };
        args.push(a.to_string_lossy().into_owned());
    }
    // SAFETY: the caller's guarantee: QEMU's qemu_info_t, valid for the call.
    let Some(info) = (unsafe { info.as_ref() }) else {
        eprintln!("{name}: QEMU passed no qemu_info_t");
        return -1;
    };
    // SAFETY: `info` is the qemu_info_t of this qemu_plugin_install call.
    let host = unsafe { HostInfo::of(info) };
    match host.check(Generation::of_this_qemu()).and_then(|g| plugin(id, &host, g, &args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{name}: error: {e}");
            -1
        }
    }
}

/// Keeps a plugin's resolved calls in `cell` for the life of the process;
/// a second install in one QEMU is refused.
pub fn keep<T>(cell: &'static OnceLock<T>, calls: T) -> Result<&'static T, String> {
    let mut first = false;
    let kept = cell.get_or_init(|| {
        first = true;
        calls
    });
    first.then_some(kept).ok_or_else(|| "plugin installed twice in one QEMU".into())
}

/// Declares a plugin `cdylib`'s two exported symbols, once per plugin
/// crate:
/// * `qemu_plugin_version`, set when `dlopen` loads the library (before
///   QEMU reads it) to the generation of the QEMU that loads it;
/// * `qemu_plugin_install`, which runs [`install`] with the plugin's
///   `NAME` (the prefix of its messages) and its own install function
///   `fn(PluginId, &HostInfo, Generation, &[String]) -> Result<(), String>`,
///   called once the host passed [`HostInfo::check`].
#[macro_export]
macro_rules! declare_plugin {
    ($name:literal, $install:path) => {
        /// QEMU's plugin loader checks this before calling
        /// `qemu_plugin_install`; `DETECT` sets it to the generation of the
        /// QEMU that loads us. An `AtomicI32` has the layout of a C `int`.
        #[no_mangle]
        #[used]
        #[allow(non_upper_case_globals)]
        pub static qemu_plugin_version: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

        extern "C" fn detect_at_load() {
            if let Some(g) = $crate::Generation::of_this_qemu() {
                qemu_plugin_version.store(g.api(), std::sync::atomic::Ordering::Relaxed);
            }
        }

        /// Runs when `dlopen` loads the library, before QEMU reads
        /// [`qemu_plugin_version`] (a plain function pointer in `.init_array`).
        #[used]
        #[link_section = ".init_array"]
        static DETECT: extern "C" fn() = detect_at_load;

        /// QEMU's entry point: checks the QEMU, then runs the plugin's
        /// install function on its `key=value` arguments.
        ///
        /// # Safety
        /// Called by QEMU only, with a valid `info` and `argc`
        /// NUL-terminated strings in `argv`.
        #[no_mangle]
        pub unsafe extern "C" fn qemu_plugin_install(
            id: $crate::PluginId,
            info: *const $crate::QemuInfo,
            argc: std::ffi::c_int,
            argv: *const *const std::ffi::c_char,
        ) -> std::ffi::c_int {
            // SAFETY: QEMU's arguments, as the caller guarantees.
            unsafe { $crate::install($name, id, info, argc, argv, $install) }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(min: i32, cur: i32) -> HostInfo {
        HostInfo { target: "x86_64".into(), version_min: min, version_cur: cur, system: true, smp_vcpus: 1 }
    }

    /// The calls QEMU 7.2 and 10.0 export that [`Generation::detect`] looks at.
    const QEMU_7_2: &[&str] = &["qemu_plugin_register_vcpu_insn_exec_inline", "qemu_plugin_insn_data"];
    const QEMU_9_0: &[&str] = &["qemu_plugin_scoreboard_new", "qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu"];
    const QEMU_10_0: &[&str] = &[
        "qemu_plugin_scoreboard_new",
        "qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu",
        "qemu_plugin_register_vcpu_insn_exec_cond_cb",
        "qemu_plugin_read_memory_vaddr",
    ];

    fn detect(syms: &[&str]) -> Option<Generation> {
        Generation::detect(|n| syms.contains(&n))
    }

    #[test]
    fn generations_from_exported_calls() {
        assert_eq!(detect(QEMU_7_2), Some(Generation::V1));
        assert_eq!(detect(QEMU_9_0), Some(Generation::V2));
        assert_eq!(detect(QEMU_10_0), Some(Generation::V3));
        assert_eq!(detect(&["qemu_plugin_outs"]), None);
    }

    #[test]
    fn accepts_qemu_7_2_and_10_0() {
        // QEMU 7.2: API 0..=1; QEMU 10.0: API 2..=4.
        assert_eq!(host(0, 1).check(detect(QEMU_7_2)), Ok(Generation::V1));
        assert_eq!(host(2, 4).check(detect(QEMU_10_0)), Ok(Generation::V3));
        assert_eq!(host(2, 2).check(detect(QEMU_9_0)), Ok(Generation::V2));
        let i386 = HostInfo { target: "i386".into(), ..host(0, 1) };
        assert_eq!(i386.check(Some(Generation::V1)), Ok(Generation::V1));
    }

    #[test]
    fn refuses_what_it_cannot_serve_naming_versions() {
        // A future QEMU whose minimum passed the generation it exports.
        let e = host(4, 6).check(detect(QEMU_10_0)).unwrap_err();
        assert!(e.contains("plugin API 4..=6") && e.contains("API 3") && e.contains("tested: 7.2 and 10.0"), "{e}");
        let e = host(0, 1).check(None).unwrap_err();
        assert!(e.contains("exports none") && e.contains("QEMU 7.2 to 8.2"), "{e}");
        let g = Some(Generation::V1);
        assert!(HostInfo { system: false, ..host(0, 1) }.check(g).unwrap_err().contains("full-system"));
        assert!(HostInfo { target: "aarch64".into(), ..host(0, 1) }.check(g).unwrap_err().contains("x86"));
        assert!(HostInfo { smp_vcpus: 2, ..host(0, 1) }.check(g).unwrap_err().contains("-smp 1 (got 2 vCPUs)"));
    }

    #[test]
    fn a_second_install_is_refused_and_keeps_the_first_calls() {
        static CELL: OnceLock<u32> = OnceLock::new();
        assert_eq!(keep(&CELL, 1), Ok(&1));
        assert_eq!(keep(&CELL, 2).unwrap_err(), "plugin installed twice in one QEMU");
        assert_eq!(CELL.get(), Some(&1));
    }

    #[test]
    fn qemu_info_layout_matches_c() {
        // const char* (8) + 2 ints (8) + bool padded to 4 + union of 2 ints.
        assert_eq!(std::mem::size_of::<QemuInfo>(), 32);
        assert_eq!(std::mem::offset_of!(QemuInfo, system_emulation), 16);
        assert_eq!(std::mem::offset_of!(QemuInfo, smp_vcpus), 20);
        assert_eq!(std::mem::size_of::<PluginU64>(), 16);
        assert_eq!(std::mem::size_of::<std::sync::atomic::AtomicI32>(), std::mem::size_of::<c_int>());
    }
}
