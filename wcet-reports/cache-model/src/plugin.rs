//! The QEMU side: the callbacks that feed [`crate::model::Model`], on the
//! hand-written plugin API bindings of the `plugin-api` crate (shared with
//! the profile plugin), resolved at install time with `dlsym` from the
//! QEMU executable (so the crate links without QEMU and the host tests
//! never touch it).
//!
//! # One build for every API generation
//!
//! See `plugin_api`: one `libcache_model.so` loads on QEMU 7.2 (API 1) as
//! on 10.x (API 4, minimum 2), and refuses with its own message what it
//! cannot serve.
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

use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use abi::marker::Marker;
use plugin_api::{resolve, Core, MemCb, MemInfo, Opaque, PluginId, PluginU64, CB_NO_REGS, INLINE_ADD_U64, MEM_RW};
pub use plugin_api::{Generation, HostInfo, SUPPORTED};

use crate::config::{parse_args, Args};
use crate::model::{Model, Source};

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

/// Function pointers into QEMU, resolved once in `qemu_plugin_install`:
/// the shared [`Core`] and what only the cache model uses.
struct Api {
    core: Core,
    counter: Counter,
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
                core: Core::resolve(generation)?,
                counter,
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

/// Parses `key=value` arguments (see [`crate::config::parse_args`]),
/// resolves the calls and registers the callbacks, on a host
/// `plugin_api` checked.
fn install(id: PluginId, host: &HostInfo, generation: Generation, args: &[String]) -> Result<(), String> {
    let args = parse_args(args)?;
    // SAFETY: `HostInfo::check` found that QEMU serves `generation`.
    let api = plugin_api::keep(&API, unsafe { Api::resolve(generation) }?)?;
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
    // SAFETY: `id` is the id QEMU gave this plugin.
    unsafe { api.core.register(id, on_tb_trans, on_exit) };
    Ok(())
}

plugin_api::declare_plugin!("cache-model", install);

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
        let n = (api.core.tb_n_insns)(tb);
        for i in 0..n {
            let insn = (api.core.tb_get_insn)(tb, i);
            match api.core.marker(insn) {
                Some(m) => {
                    let tag = m as usize as *mut c_void;
                    (api.core.register_vcpu_insn_exec_cb)(insn, on_marker, CB_NO_REGS, tag);
                }
                None => {
                    match &api.counter {
                        Counter::Global { add } => add(insn, INLINE_ADD_U64, INSNS.as_ptr().cast(), 1),
                        Counter::Scoreboard { entry, add, .. } => add(insn, INLINE_ADD_U64, *entry, 1),
                    }
                    let source = source_tag(Source::of_insn((api.core.insn_vaddr)(insn)));
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
    let csv = format!("{}\n{}", meta_line(&s.args, api.core.generation, s.qemu_api), s.model.csv());
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

    #[test]
    fn meta_line_names_qemu_api_and_inputs() {
        let a = parse_args(&["out=o", "profile=embedded", "qemu=10.0.2"]).unwrap();
        let l = meta_line(&a, Generation::V3, (2, 4));
        assert!(l.starts_with("# cache-model qemu=10.0.2 api=3 qemu_api=2-4 inputs=data profile=embedded "), "{l}");
        let a = parse_args(&["out=o"]).unwrap();
        assert!(meta_line(&a, Generation::V1, (0, 1)).contains("qemu=unknown api=1 qemu_api=0-1"));
    }
}
