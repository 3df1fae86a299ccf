//! The QEMU side: hand-written FFI for the plugin API calls we use, in every
//! generation of them QEMU has had since 7.2, resolved at install time with
//! `dlsym` from the QEMU executable (so the crate links without QEMU and the
//! host tests never touch it), and the callbacks that feed
//! [`crate::model::Model`].
//!
//! # One build for every API generation
//!
//! QEMU reads the plugin's exported `qemu_plugin_version` right after
//! `dlopen` and refuses a version outside its `min..=cur`. A constructor in
//! `.init_array`, which `dlopen` runs before QEMU reads the symbol, looks at
//! which calls the QEMU executable exports ([`Generation::detect`]) and sets
//! the version to the generation found. So one `libcache_model.so` loads on
//! QEMU 7.2 (API 1) as on 10.x (API 4, minimum 2), and refuses with its own
//! message what it cannot serve.
//!
//! Instrumentation per translated instruction:
//! * marker instructions ([`abi::marker`]) get an exec callback that opens
//!   or closes a job window, and nothing else (they access no memory);
//! * every other instruction gets an inline `add 1` on an instruction
//!   counter (a plain `u64` under API 1, a scoreboard entry from API 2 on;
//!   exact counts even when a window opens mid-block, at the cost of one
//!   inline add per instruction instead of one per block), and a memory
//!   callback for all loads and stores whose user data is the
//!   [`Source`] of the instruction (kernel or user half).
//!
//! Only data accesses are simulated. Instruction fetches are not: up to
//! QEMU 10.0 (API 4) nothing gives an instruction's guest-physical address
//! (`qemu_plugin_insn_haddr` is a host pointer); API 5 (QEMU 10.1) adds
//! `qemu_plugin_translate_vaddr`, which could. The CSV's first line says
//! `inputs=data`.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use abi::marker::Marker;

use crate::config::{parse_args, Args};
use crate::model::{Model, Source};

type PluginId = u64;
type MemInfo = u32;

#[repr(C)]
struct Opaque {
    _private: [u8; 0],
}

/// `qemu_info_t` (the `system` member of the union only); the same layout
/// in every API version so far.
#[repr(C)]
pub struct QemuInfo {
    target_name: *const c_char,
    version_min: c_int,
    version_cur: c_int,
    system_emulation: bool,
    smp_vcpus: c_int,
    max_vcpus: c_int,
}

/// `qemu_plugin_u64` (API 2+): one `u64` of a scoreboard entry, by value.
#[repr(C)]
#[derive(Clone, Copy)]
struct PluginU64 {
    score: *mut Opaque,
    offset: usize,
}

type TbTransCb = extern "C" fn(PluginId, *mut Opaque);
type UdataCb = extern "C" fn(PluginId, *mut c_void);
type VcpuUdataCb = extern "C" fn(c_uint, *mut c_void);
type MemCb = extern "C" fn(c_uint, MemInfo, u64, *mut c_void);

// enum values from qemu-plugin.h, unchanged from API 1 to 4
const CB_NO_REGS: c_int = 0;
const MEM_RW: c_int = 3;
const INLINE_ADD_U64: c_int = 0;

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
    /// The API version this plugin declares for the generation.
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
}

/// What the README and the refusals name as supported.
pub const SUPPORTED: &str = "plugin API 1 (QEMU 7.2 to 8.2), 2 (QEMU 9.0) and 3 or later while QEMU keeps accepting 3 \
     (QEMU 9.1 to 10.x; tested: 7.2 and 10.0)";

/// `qemu_plugin_insn_data` in its two forms.
enum InsnData {
    /// API 1 and 2: a pointer to the instruction's bytes.
    Pointer(unsafe extern "C" fn(*const Opaque) -> *const c_void),
    /// API 3+: copies up to `len` bytes into `dest`, returns how many.
    Copy(unsafe extern "C" fn(*const Opaque, *mut c_void, usize) -> usize),
}

/// The executed-instruction counter and how TCG-generated code adds to it.
enum Counter {
    /// API 1: an inline add on [`INSNS`] through its address.
    Global { add: unsafe extern "C" fn(*mut Opaque, c_int, *mut c_void, u64) },
    /// API 2+: an inline add on a scoreboard entry (one `u64` per vCPU).
    Scoreboard {
        entry: PluginU64,
        add: unsafe extern "C" fn(*mut Opaque, c_int, PluginU64, u64),
        sum: unsafe extern "C" fn(PluginU64) -> u64,
    },
}

/// Function pointers into QEMU, resolved once in `qemu_plugin_install`.
struct Api {
    generation: Generation,
    register_vcpu_tb_trans_cb: unsafe extern "C" fn(PluginId, TbTransCb),
    register_atexit_cb: unsafe extern "C" fn(PluginId, UdataCb, *mut c_void),
    tb_n_insns: unsafe extern "C" fn(*const Opaque) -> usize,
    tb_get_insn: unsafe extern "C" fn(*const Opaque, usize) -> *mut Opaque,
    insn_size: unsafe extern "C" fn(*const Opaque) -> usize,
    insn_vaddr: unsafe extern "C" fn(*const Opaque) -> u64,
    insn_data: InsnData,
    counter: Counter,
    register_vcpu_insn_exec_cb: unsafe extern "C" fn(*mut Opaque, VcpuUdataCb, c_int, *mut c_void),
    register_vcpu_mem_cb: unsafe extern "C" fn(*mut Opaque, MemCb, c_int, c_int, *mut c_void),
    mem_size_shift: unsafe extern "C" fn(MemInfo) -> c_uint,
    get_hwaddr: unsafe extern "C" fn(MemInfo, u64) -> *mut Opaque,
    hwaddr_is_io: unsafe extern "C" fn(*const Opaque) -> bool,
    hwaddr_phys_addr: unsafe extern "C" fn(*const Opaque) -> u64,
}

// SAFETY: the raw pointers in `Api` are QEMU's scoreboard handle and
// function addresses, valid for the life of the process; QEMU calls us from
// its single vCPU thread (we refuse -smp > 1) and at exit, never at once.
unsafe impl Send for Api {}
// SAFETY: as above; nothing in `Api` changes after install.
unsafe impl Sync for Api {}

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// `RTLD_DEFAULT` on glibc: search the global scope (the QEMU executable).
const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

/// The address QEMU exports under `name`, if any.
fn exported(name: &str) -> Option<*mut c_void> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is NUL-terminated and dlsym only reads it.
    let p = unsafe { dlsym(RTLD_DEFAULT, c.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// QEMU's function `name` as a function pointer of type `F`.
///
/// # Safety
/// `F` must be the C prototype of `name` in the QEMU that runs us.
unsafe fn resolve<F: Copy>(name: &str) -> Result<F, String> {
    let p = exported(name).ok_or_else(|| {
        format!("QEMU does not export `{name}`; is this a QEMU built with TCG plugin support? ({SUPPORTED})")
    })?;
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: same size (checked above), and the caller guarantees that the
    // address is a function of type `F`.
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

impl Api {
    /// Resolves every call for `generation`, whose prototypes are the ones
    /// spelled in the field types (the same in every generation unless the
    /// field is per generation).
    ///
    /// # Safety
    /// QEMU must serve `generation` (see [`Generation::detect`]).
    unsafe fn resolve(generation: Generation) -> Result<Api, String> {
        // SAFETY (every call below): each name is resolved to the type of
        // the field it fills, which is its prototype in qemu-plugin.h of the
        // generation's API versions.
        unsafe {
            let insn_data = match generation {
                Generation::V1 | Generation::V2 => InsnData::Pointer(resolve("qemu_plugin_insn_data")?),
                Generation::V3 => InsnData::Copy(resolve("qemu_plugin_insn_data")?),
            };
            let counter = match generation {
                Generation::V1 => Counter::Global { add: resolve("qemu_plugin_register_vcpu_insn_exec_inline")? },
                Generation::V2 | Generation::V3 => {
                    let new: unsafe extern "C" fn(usize) -> *mut Opaque = resolve("qemu_plugin_scoreboard_new")?;
                    let score = new(std::mem::size_of::<u64>());
                    if score.is_null() {
                        return Err("qemu_plugin_scoreboard_new failed".into());
                    }
                    Counter::Scoreboard {
                        entry: PluginU64 { score, offset: 0 },
                        add: resolve("qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu")?,
                        sum: resolve("qemu_plugin_u64_sum")?,
                    }
                }
            };
            Ok(Api {
                generation,
                register_vcpu_tb_trans_cb: resolve("qemu_plugin_register_vcpu_tb_trans_cb")?,
                register_atexit_cb: resolve("qemu_plugin_register_atexit_cb")?,
                tb_n_insns: resolve("qemu_plugin_tb_n_insns")?,
                tb_get_insn: resolve("qemu_plugin_tb_get_insn")?,
                insn_size: resolve("qemu_plugin_insn_size")?,
                insn_vaddr: resolve("qemu_plugin_insn_vaddr")?,
                insn_data,
                counter,
                register_vcpu_insn_exec_cb: resolve("qemu_plugin_register_vcpu_insn_exec_cb")?,
                register_vcpu_mem_cb: resolve("qemu_plugin_register_vcpu_mem_cb")?,
                mem_size_shift: resolve("qemu_plugin_mem_size_shift")?,
                get_hwaddr: resolve("qemu_plugin_get_hwaddr")?,
                hwaddr_is_io: resolve("qemu_plugin_hwaddr_is_io")?,
                hwaddr_phys_addr: resolve("qemu_plugin_hwaddr_phys_addr")?,
            })
        }
    }

    /// Executed non-marker instructions so far.
    fn insns(&self) -> u64 {
        match &self.counter {
            Counter::Global { .. } => INSNS.load(Ordering::Relaxed),
            // SAFETY: `entry` is the live scoreboard entry made at install.
            Counter::Scoreboard { entry, sum, .. } => unsafe { sum(*entry) },
        }
    }

    /// The 8 bytes of `insn` if it is 8 bytes long.
    ///
    /// # Safety
    /// `insn` must be a live instruction handle of the current translation.
    unsafe fn insn_bytes8(&self, insn: *const Opaque) -> Option<[u8; 8]> {
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
}

static API: OnceLock<Api> = OnceLock::new();

/// Executed non-marker instructions under API 1; incremented by
/// TCG-generated inline code through its address.
static INSNS: AtomicU64 = AtomicU64::new(0);

struct State {
    model: Model,
    args: Args,
    /// QEMU's plugin API range, for the CSV's first line.
    qemu_api: (i32, i32),
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn state() -> std::sync::MutexGuard<'static, Option<State>> {
    // A panic inside a callback aborts (panic = "abort"), so poisoning can
    // only come from a test; recover the data either way.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the plugin needs from `qemu_info_t`, checked before anything else.
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

/// Refuses a QEMU or a machine configuration the model does not support;
/// `generation` is what [`Generation::detect`] found in the executable.
pub fn check_host(h: &HostInfo, generation: Option<Generation>) -> Result<Generation, String> {
    let offered = format!("this QEMU offers plugin API {}..={}", h.version_min, h.version_cur);
    let Some(g) = generation else {
        return Err(format!(
            "{offered} but exports none of the calls of a generation this plugin knows; supported: {SUPPORTED}"
        ));
    };
    if !(h.version_min..=h.version_cur).contains(&g.api()) {
        return Err(format!(
            "{offered}; its calls look like API {} ({g:?}), which it does not accept; supported: {SUPPORTED}",
            g.api()
        ));
    }
    if !h.system {
        return Err("needs full-system emulation (qemu-system-x86_64): user-mode has no physical addresses".into());
    }
    if h.target != "x86_64" && h.target != "i386" {
        return Err(format!(
            "job markers are x86 instructions; target `{}` is not supported (use qemu-system-x86_64)",
            h.target
        ));
    }
    if h.smp_vcpus != 1 {
        return Err(format!("the model simulates one core's caches; run QEMU with -smp 1 (got {} vCPUs)", h.smp_vcpus));
    }
    Ok(g)
}

/// The CSV's first line: what produced it and which inputs the run had.
pub fn meta_line(args: &Args, generation: Generation, qemu_api: (i32, i32)) -> String {
    format!(
        "# cache-model qemu={} api={} qemu_api={}-{} inputs=data {}",
        args.qemu.as_deref().unwrap_or("unknown"),
        generation.api(),
        qemu_api.0,
        qemu_api.1,
        args.config.describe()
    )
}

fn install(id: PluginId, info: &QemuInfo, args: &[String]) -> Result<(), String> {
    let target = if info.target_name.is_null() {
        String::new()
    } else {
        // SAFETY: QEMU passes a NUL-terminated target name that lives at least
        // for the duration of qemu_plugin_install.
        unsafe { CStr::from_ptr(info.target_name) }.to_string_lossy().into_owned()
    };
    let host = HostInfo {
        target,
        version_min: info.version_min,
        version_cur: info.version_cur,
        system: info.system_emulation,
        smp_vcpus: info.smp_vcpus,
    };
    let generation = check_host(&host, Generation::detect(|n| exported(n).is_some()))?;
    let args = parse_args(args)?;
    // SAFETY: check_host found that QEMU serves `generation`.
    let api = unsafe { Api::resolve(generation) }?;
    if API.set(api).is_err() {
        return Err("plugin installed twice in one QEMU".into());
    }
    let model = Model::new(args.config.clone());
    if args.verbose {
        eprintln!(
            "cache-model: plugin API {} ({generation:?}), {} -> {}",
            generation.api(),
            args.config.describe(),
            args.out
        );
    }
    *state() = Some(State { model, args, qemu_api: (host.version_min, host.version_cur) });
    let api = API.get().ok_or("API table missing")?;
    // SAFETY: `id` is the id QEMU gave this plugin; the callbacks are
    // `extern "C"` functions with the prototypes the API expects, and they
    // live as long as the loaded library.
    unsafe {
        (api.register_vcpu_tb_trans_cb)(id, on_tb_trans);
        (api.register_atexit_cb)(id, on_exit, std::ptr::null_mut());
    }
    Ok(())
}

/// QEMU's plugin loader checks this before calling `qemu_plugin_install`;
/// `DETECT` sets it to the generation of the QEMU that loads us. An
/// `AtomicI32` has the layout of a C `int`.
#[no_mangle]
#[used]
#[allow(non_upper_case_globals)]
pub static qemu_plugin_version: AtomicI32 = AtomicI32::new(1);

extern "C" fn detect_at_load() {
    if let Some(g) = Generation::detect(|n| exported(n).is_some()) {
        qemu_plugin_version.store(g.api(), Ordering::Relaxed);
    }
}

/// Runs when `dlopen` loads the library, before QEMU reads
/// [`qemu_plugin_version`] (a plain function pointer in `.init_array`).
#[used]
#[link_section = ".init_array"]
static DETECT: extern "C" fn() = detect_at_load;

/// Entry point: checks the QEMU, parses `key=value` arguments (see
/// [`crate::config::parse_args`]) and registers the callbacks.
///
/// # Safety
/// Called by QEMU only, with a valid `info` and `argc` NUL-terminated
/// strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: PluginId,
    info: *const QemuInfo,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    let mut args = Vec::new();
    for i in 0..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: QEMU passes `argc` valid pointers to NUL-terminated strings.
        let a = unsafe { CStr::from_ptr(*argv.add(i)) };
        args.push(a.to_string_lossy().into_owned());
    }
    // SAFETY: QEMU passes a valid qemu_info_t for the duration of this call.
    let Some(info) = (unsafe { info.as_ref() }) else {
        eprintln!("cache-model: QEMU passed no qemu_info_t");
        return -1;
    };
    match install(id, info, &args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cache-model: error: {e}");
            -1
        }
    }
}

/// Memory-callback user data: the [`Source`] of the instruction.
const fn source_tag(s: Source) -> *mut c_void {
    match s {
        Source::Kernel => std::ptr::without_provenance_mut(1),
        Source::User => std::ptr::without_provenance_mut(2),
    }
}

extern "C" fn on_tb_trans(_id: PluginId, tb: *mut Opaque) {
    let Some(api) = API.get() else { return };
    // SAFETY: `tb` is the live translation block handle of this callback,
    // and the insn handles stay valid until it returns. The inline counter
    // is a static or QEMU's scoreboard, both valid for the process.
    unsafe {
        let n = (api.tb_n_insns)(tb);
        for i in 0..n {
            let insn = (api.tb_get_insn)(tb, i);
            match api.insn_bytes8(insn).and_then(|b| Marker::decode(&b)) {
                Some(m) => {
                    let tag = m as usize as *mut c_void;
                    (api.register_vcpu_insn_exec_cb)(insn, on_marker, CB_NO_REGS, tag);
                }
                None => {
                    match &api.counter {
                        Counter::Global { add } => add(insn, INLINE_ADD_U64, INSNS.as_ptr().cast(), 1),
                        Counter::Scoreboard { entry, add, .. } => add(insn, INLINE_ADD_U64, *entry, 1),
                    }
                    let source = source_tag(Source::of_insn((api.insn_vaddr)(insn)));
                    (api.register_vcpu_mem_cb)(insn, on_mem, CB_NO_REGS, MEM_RW, source);
                }
            }
        }
    }
}

extern "C" fn on_marker(_vcpu: c_uint, tag: *mut c_void) {
    let Some(api) = API.get() else { return };
    let insns = api.insns();
    let mut g = state();
    let Some(s) = g.as_mut() else { return };
    if tag as usize == Marker::JobBegin as usize {
        s.model.job_begin(insns);
    } else {
        s.model.job_end(insns);
    }
}

extern "C" fn on_mem(_vcpu: c_uint, info: MemInfo, vaddr: u64, ud: *mut c_void) {
    let Some(api) = API.get() else { return };
    let source = if ud == source_tag(Source::Kernel) { Source::Kernel } else { Source::User };
    // SAFETY: `info` and `vaddr` come from QEMU for this very access, and
    // the hwaddr handle is used only inside this callback.
    let (pa, size) = unsafe {
        let h = (api.get_hwaddr)(info, vaddr);
        if h.is_null() || (api.hwaddr_is_io)(h) {
            if let Some(s) = state().as_mut() {
                s.model.skipped += 1;
            }
            return;
        }
        ((api.hwaddr_phys_addr)(h), 1u64 << (api.mem_size_shift)(info))
    };
    let mut g = state();
    let Some(s) = g.as_mut() else { return };
    let m = &mut s.model;
    const LINE: u64 = crate::config::LINE;
    m.count_access(source);
    if (vaddr & (LINE - 1)) + size <= LINE {
        m.access_line(pa, source);
        return;
    }
    // The access straddles lines: look every line up, translating again
    // where it crosses into another page.
    let page = vaddr & !0xfff;
    let mut v = vaddr & !(LINE - 1);
    while v < vaddr + size {
        let line_pa = if v & !0xfff == page {
            (pa & !0xfff) | (v & 0xfff)
        } else {
            // SAFETY: as above; QEMU translated the second page for this
            // access, so its TLB entry is normally present.
            unsafe {
                let h = (api.get_hwaddr)(info, v);
                if h.is_null() || (api.hwaddr_is_io)(h) {
                    m.skipped += 1;
                    v += LINE;
                    continue;
                }
                (api.hwaddr_phys_addr)(h)
            }
        };
        m.access_line(line_pa, source);
        v += LINE;
    }
}

extern "C" fn on_exit(_id: PluginId, _ud: *mut c_void) {
    let Some(api) = API.get() else { return };
    let insns = api.insns();
    let mut g = state();
    let Some(s) = g.as_mut() else { return };
    s.model.finish(insns);
    let csv = format!("{}\n{}", meta_line(&s.args, api.generation, s.qemu_api), s.model.csv());
    if let Err(e) = std::fs::write(&s.args.out, csv) {
        eprintln!("cache-model: error: cannot write {}: {e}", s.args.out);
    }
    if s.args.verbose {
        let m = &s.model;
        eprintln!(
            "cache-model: {} jobs ({} complete), {} instructions, {} kernel and {} user accesses outside jobs, {} skipped (I/O), {} stray JobEnd; wrote {}",
            m.jobs().len(),
            m.jobs().iter().filter(|j| j.complete).count(),
            insns,
            m.outside.kernel_accesses,
            m.outside.user_accesses,
            m.skipped,
            m.stray_ends,
            s.args.out
        );
    }
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
        assert_eq!(check_host(&host(0, 1), detect(QEMU_7_2)), Ok(Generation::V1));
        assert_eq!(check_host(&host(2, 4), detect(QEMU_10_0)), Ok(Generation::V3));
        assert_eq!(check_host(&host(2, 2), detect(QEMU_9_0)), Ok(Generation::V2));
        let i386 = HostInfo { target: "i386".into(), ..host(0, 1) };
        assert_eq!(check_host(&i386, Some(Generation::V1)), Ok(Generation::V1));
    }

    #[test]
    fn refuses_what_it_cannot_serve_naming_versions() {
        // A future QEMU whose minimum passed the generation it exports.
        let e = check_host(&host(4, 6), detect(QEMU_10_0)).unwrap_err();
        assert!(e.contains("plugin API 4..=6") && e.contains("API 3") && e.contains("tested: 7.2 and 10.0"), "{e}");
        let e = check_host(&host(0, 1), None).unwrap_err();
        assert!(e.contains("exports none") && e.contains("QEMU 7.2 to 8.2"), "{e}");
        let g = Some(Generation::V1);
        assert!(check_host(&HostInfo { system: false, ..host(0, 1) }, g).unwrap_err().contains("full-system"));
        assert!(check_host(&HostInfo { target: "aarch64".into(), ..host(0, 1) }, g).unwrap_err().contains("x86"));
        assert!(check_host(&HostInfo { smp_vcpus: 2, ..host(0, 1) }, g).unwrap_err().contains("-smp 1"));
    }

    #[test]
    fn meta_line_names_qemu_api_and_inputs() {
        let a = parse_args(&["out=o", "profile=embedded", "qemu=10.0.2"]).unwrap();
        let l = meta_line(&a, Generation::V3, (2, 4));
        assert!(l.starts_with("# cache-model qemu=10.0.2 api=3 qemu_api=2-4 inputs=data profile=embedded "), "{l}");
        let a = parse_args(&["out=o"]).unwrap();
        assert!(meta_line(&a, Generation::V1, (0, 1)).contains("qemu=unknown api=1 qemu_api=0-1"));
    }

    #[test]
    fn qemu_info_layout_matches_c() {
        // const char* (8) + 2 ints (8) + bool padded to 4 + union of 2 ints.
        assert_eq!(std::mem::size_of::<QemuInfo>(), 32);
        assert_eq!(std::mem::offset_of!(QemuInfo, system_emulation), 16);
        assert_eq!(std::mem::offset_of!(QemuInfo, smp_vcpus), 20);
        assert_eq!(std::mem::size_of::<PluginU64>(), 16);
        assert_eq!(std::mem::size_of::<AtomicI32>(), std::mem::size_of::<c_int>());
    }
}
