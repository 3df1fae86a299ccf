//! The QEMU side: hand-written FFI for the plugin API version 1 calls we
//! use, resolved at install time with `dlsym` from the QEMU executable (so
//! the crate links without QEMU and the host tests never touch it), and the
//! callbacks that feed [`crate::model::Model`].
//!
//! Instrumentation per translated instruction:
//! * marker instructions ([`abi::marker`]) get an exec callback that opens
//!   or closes a job window, and nothing else (they access no memory);
//! * every other instruction gets an inline `add 1` on a global counter
//!   (exact instruction counts even when a window opens mid-block, at the
//!   cost of one inline add per instruction instead of one per block), and
//!   a memory callback for all loads and stores.
//!
//! Only data accesses are simulated. Instruction fetches are not: QEMU 7.2
//! offers no guest-physical address for an instruction
//! (`qemu_plugin_insn_haddr` is a host pointer), and the model is an L1D
//! model anyway.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use abi::marker::Marker;

use crate::config::{parse_args, Args};
use crate::model::Model;

/// The plugin API version this plugin is written against.
pub const API_VERSION: i32 = 1;

type PluginId = u64;
type MemInfo = u32;

#[repr(C)]
struct Opaque {
    _private: [u8; 0],
}

/// `qemu_info_t` of QEMU 7.2 (the `system` member of the union only).
#[repr(C)]
pub struct QemuInfo {
    target_name: *const c_char,
    version_min: c_int,
    version_cur: c_int,
    system_emulation: bool,
    smp_vcpus: c_int,
    max_vcpus: c_int,
}

type TbTransCb = extern "C" fn(PluginId, *mut Opaque);
type UdataCb = extern "C" fn(PluginId, *mut c_void);
type VcpuUdataCb = extern "C" fn(c_uint, *mut c_void);
type MemCb = extern "C" fn(c_uint, MemInfo, u64, *mut c_void);

// enum values from qemu-plugin.h (plugin API version 1)
const CB_NO_REGS: c_int = 0;
const MEM_RW: c_int = 3;
const INLINE_ADD_U64: c_int = 0;

/// Function pointers into QEMU, resolved once in `qemu_plugin_install`.
struct Api {
    register_vcpu_tb_trans_cb: unsafe extern "C" fn(PluginId, TbTransCb),
    register_atexit_cb: unsafe extern "C" fn(PluginId, UdataCb, *mut c_void),
    tb_n_insns: unsafe extern "C" fn(*const Opaque) -> usize,
    tb_get_insn: unsafe extern "C" fn(*const Opaque, usize) -> *mut Opaque,
    insn_data: unsafe extern "C" fn(*const Opaque) -> *const c_void,
    insn_size: unsafe extern "C" fn(*const Opaque) -> usize,
    register_vcpu_insn_exec_cb: unsafe extern "C" fn(*mut Opaque, VcpuUdataCb, c_int, *mut c_void),
    register_vcpu_insn_exec_inline: unsafe extern "C" fn(*mut Opaque, c_int, *mut c_void, u64),
    register_vcpu_mem_cb: unsafe extern "C" fn(*mut Opaque, MemCb, c_int, c_int, *mut c_void),
    mem_size_shift: unsafe extern "C" fn(MemInfo) -> c_uint,
    get_hwaddr: unsafe extern "C" fn(MemInfo, u64) -> *mut Opaque,
    hwaddr_is_io: unsafe extern "C" fn(*const Opaque) -> bool,
    hwaddr_phys_addr: unsafe extern "C" fn(*const Opaque) -> u64,
}

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// `RTLD_DEFAULT` on glibc: search the global scope (the QEMU executable).
const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

macro_rules! resolve {
    ($($field:ident = $sym:literal),* $(,)?) => {{
        $(
            // SAFETY: the literal is NUL-terminated, and dlsym only reads it.
            let $field = unsafe { dlsym(RTLD_DEFAULT, concat!($sym, "\0").as_ptr().cast()) };
            if $field.is_null() {
                return Err(format!("QEMU does not export `{}`; is this QEMU built with TCG plugin support (7.2)?", $sym));
            }
        )*
        // SAFETY: each pointer is the non-null address of the QEMU function
        // of that name, whose C prototype in qemu-plugin.h (API version 1,
        // QEMU 7.2) matches the field's type; the API version was checked
        // before.
        unsafe {
            Api { $($field: fn_ptr($field)),* }
        }
    }};
}

/// Reinterprets a symbol address as a function pointer type `F`.
///
/// # Safety
/// `p` must be the address of a function whose ABI and prototype are `F`.
unsafe fn fn_ptr<F: Copy>(p: *mut c_void) -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: same size (checked above), and the caller guarantees that the
    // address is a function of type `F`.
    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
}

impl Api {
    fn resolve() -> Result<Api, String> {
        Ok(resolve!(
            register_vcpu_tb_trans_cb = "qemu_plugin_register_vcpu_tb_trans_cb",
            register_atexit_cb = "qemu_plugin_register_atexit_cb",
            tb_n_insns = "qemu_plugin_tb_n_insns",
            tb_get_insn = "qemu_plugin_tb_get_insn",
            insn_data = "qemu_plugin_insn_data",
            insn_size = "qemu_plugin_insn_size",
            register_vcpu_insn_exec_cb = "qemu_plugin_register_vcpu_insn_exec_cb",
            register_vcpu_insn_exec_inline = "qemu_plugin_register_vcpu_insn_exec_inline",
            register_vcpu_mem_cb = "qemu_plugin_register_vcpu_mem_cb",
            mem_size_shift = "qemu_plugin_mem_size_shift",
            get_hwaddr = "qemu_plugin_get_hwaddr",
            hwaddr_is_io = "qemu_plugin_hwaddr_is_io",
            hwaddr_phys_addr = "qemu_plugin_hwaddr_phys_addr",
        ))
    }
}

static API: OnceLock<Api> = OnceLock::new();

/// Executed non-marker instructions; incremented by TCG-generated inline
/// code through its address, read by the marker callbacks.
static INSNS: AtomicU64 = AtomicU64::new(0);

struct State {
    model: Model,
    args: Args,
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

/// Refuses a QEMU or a machine configuration the model does not support.
pub fn check_host(h: &HostInfo) -> Result<(), String> {
    if h.version_cur != API_VERSION || h.version_min > API_VERSION {
        return Err(format!(
            "this plugin is written for the QEMU TCG plugin API version {API_VERSION} (QEMU 7.2, as in Debian 12); \
             this QEMU offers API versions {}..={}, which are not supported",
            h.version_min, h.version_cur
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
    Ok(())
}

fn install(id: PluginId, info: &QemuInfo, args: &[String]) -> Result<(), String> {
    let target = if info.target_name.is_null() {
        String::new()
    } else {
        // SAFETY: QEMU passes a NUL-terminated target name that lives at least
        // for the duration of qemu_plugin_install.
        unsafe { CStr::from_ptr(info.target_name) }.to_string_lossy().into_owned()
    };
    check_host(&HostInfo {
        target,
        version_min: info.version_min,
        version_cur: info.version_cur,
        system: info.system_emulation,
        smp_vcpus: info.smp_vcpus,
    })?;
    let args = parse_args(args)?;
    let api = Api::resolve()?;
    if API.set(api).is_err() {
        return Err("plugin installed twice in one QEMU".into());
    }
    let model = Model::new(args.config.clone());
    if args.verbose {
        eprintln!("cache-model: {} -> {}", args.config.describe(), args.out);
    }
    *state() = Some(State { model, args });
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

/// QEMU's plugin loader checks this before calling `qemu_plugin_install`.
#[no_mangle]
#[used]
#[allow(non_upper_case_globals)]
pub static qemu_plugin_version: c_int = API_VERSION;

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

extern "C" fn on_tb_trans(_id: PluginId, tb: *mut Opaque) {
    let Some(api) = API.get() else { return };
    // SAFETY: `tb` is the live translation block handle of this callback;
    // the insn handles and the bytes QEMU returns stay valid until the
    // callback returns, and we copy the bytes before that. The inline
    // counter is a static, so its address is valid for the process.
    unsafe {
        let n = (api.tb_n_insns)(tb);
        for i in 0..n {
            let insn = (api.tb_get_insn)(tb, i);
            let size = (api.insn_size)(insn);
            let data = (api.insn_data)(insn).cast::<u8>();
            let marker =
                if size == 8 && !data.is_null() { Marker::decode(std::slice::from_raw_parts(data, 8)) } else { None };
            match marker {
                Some(m) => {
                    let tag = m as usize as *mut c_void;
                    (api.register_vcpu_insn_exec_cb)(insn, on_marker, CB_NO_REGS, tag);
                }
                None => {
                    (api.register_vcpu_insn_exec_inline)(insn, INLINE_ADD_U64, INSNS.as_ptr().cast(), 1);
                    (api.register_vcpu_mem_cb)(insn, on_mem, CB_NO_REGS, MEM_RW, std::ptr::null_mut());
                }
            }
        }
    }
}

extern "C" fn on_marker(_vcpu: c_uint, tag: *mut c_void) {
    let insns = INSNS.load(Ordering::Relaxed);
    let mut g = state();
    let Some(s) = g.as_mut() else { return };
    if tag as usize == Marker::JobBegin as usize {
        s.model.job_begin(insns);
    } else {
        s.model.job_end(insns);
    }
}

extern "C" fn on_mem(_vcpu: c_uint, info: MemInfo, vaddr: u64, _ud: *mut c_void) {
    let Some(api) = API.get() else { return };
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
    if (vaddr & (LINE - 1)) + size <= LINE {
        m.count_access();
        m.access_line(pa);
        return;
    }
    // The access straddles lines: look every line up, translating again
    // where it crosses into another page.
    m.count_access();
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
        m.access_line(line_pa);
        v += LINE;
    }
}

extern "C" fn on_exit(_id: PluginId, _ud: *mut c_void) {
    let insns = INSNS.load(Ordering::Relaxed);
    let mut g = state();
    let Some(s) = g.as_mut() else { return };
    s.model.finish(insns);
    let csv = s.model.csv();
    if let Err(e) = std::fs::write(&s.args.out, csv) {
        eprintln!("cache-model: error: cannot write {}: {e}", s.args.out);
    }
    if s.args.verbose {
        let m = &s.model;
        eprintln!(
            "cache-model: {} jobs ({} complete), {} instructions, {} accesses outside jobs, {} skipped (I/O), {} stray JobEnd; wrote {}",
            m.jobs().len(),
            m.jobs().iter().filter(|j| j.complete).count(),
            insns,
            m.outside.mem_accesses,
            m.skipped,
            m.stray_ends,
            s.args.out
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(cur: i32) -> HostInfo {
        HostInfo { target: "x86_64".into(), version_min: 0, version_cur: cur, system: true, smp_vcpus: 1 }
    }

    #[test]
    fn accepts_qemu_7_2() {
        assert_eq!(check_host(&host(1)), Ok(()));
        assert_eq!(check_host(&HostInfo { target: "i386".into(), ..host(1) }), Ok(()));
    }

    #[test]
    fn refuses_other_api_versions_and_setups() {
        assert!(check_host(&host(2)).unwrap_err().contains("API version 1"));
        assert!(check_host(&host(0)).unwrap_err().contains("not supported"));
        assert!(check_host(&HostInfo { system: false, ..host(1) }).unwrap_err().contains("full-system"));
        assert!(check_host(&HostInfo { target: "aarch64".into(), ..host(1) }).unwrap_err().contains("x86"));
        assert!(check_host(&HostInfo { smp_vcpus: 2, ..host(1) }).unwrap_err().contains("-smp 1"));
    }

    #[test]
    fn qemu_info_layout_matches_c() {
        // const char* (8) + 2 ints (8) + bool padded to 4 + union of 2 ints.
        assert_eq!(std::mem::size_of::<QemuInfo>(), 32);
        assert_eq!(std::mem::offset_of!(QemuInfo, system_emulation), 16);
        assert_eq!(std::mem::offset_of!(QemuInfo, smp_vcpus), 20);
    }
}
