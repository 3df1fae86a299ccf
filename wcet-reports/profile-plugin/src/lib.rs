//! A QEMU TCG plugin that counts, for every window between an
//! [`abi::marker`] `JobBegin` and the next `JobEnd`, how many times each
//! guest instruction (by virtual address) executed. `prism bench --profile
//! NAME` boots the benchmark task with `profile=NAME`, which puts the
//! markers just inside the two TSC reads of every iteration of NAME, and
//! maps the addresses to functions of `build/kernel.elf` and of the bench
//! task's ELF (`wcet-reports/src/profile.rs`).
//!
//! Counting: an exec callback on every non-marker instruction (exact, one
//! count per executed instruction, an instruction that faults counted once
//! per attempt, as `-icount` counts them). Windows: the first `skip` are
//! dropped (the warm-up), the next `keep` are kept whole; at exit the
//! plugin writes ([`Profile::write`]) every kept window's total and the
//! per-address counts of the median window (the one whose total is the
//! median of the kept totals): one real iteration, not an average.
//!
//! Arguments: `out=PATH` (required), `skip=N` (default 0), `keep=N`
//! (default 2000). Loads on QEMU 7.2 to 10.x through `plugin_api`, but
//! QEMU 9 and later abort an `-icount` run in which every instruction has
//! an exec callback ("Bad icount read", seen on 10.0.2), so `prism bench
//! --profile` runs on QEMU 7.2 to 8.2 (Debian 12's 7.2); counting with
//! inline scoreboard adds would lift that.

use std::collections::HashMap;
use std::ffi::{c_uint, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use abi::marker::Marker;
use plugin_api::{Core, Generation, HostInfo, Opaque, PluginId, CB_NO_REGS};

/// The plugin's arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    pub out: String,
    pub skip: usize,
    pub keep: usize,
}

pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Args, String> {
    let mut a = Args { out: String::new(), skip: 0, keep: 2000 };
    for s in args {
        let s = s.as_ref();
        let (k, v) = s.split_once('=').ok_or_else(|| format!("argument `{s}` is not key=value"))?;
        let num = || v.parse::<usize>().map_err(|_| format!("{k}={v}: not a count"));
        match k {
            "out" => a.out = v.to_string(),
            "skip" => a.skip = num()?,
            "keep" => a.keep = num()?.max(1),
            _ => return Err(format!("unknown argument `{k}` (out=, skip=, keep=)")),
        }
    }
    if a.out.is_empty() {
        return Err("out=PATH is required".into());
    }
    Ok(a)
}

/// The counts of one run (the host-testable part of the plugin).
#[derive(Debug, Default)]
pub struct Profile {
    /// Guest address of each slot.
    pub addrs: Vec<u64>,
    slot_of: HashMap<u64, u32>,
    /// Counts of the open window, by slot, and the slots it touched.
    counts: Vec<u32>,
    touched: Vec<u32>,
    open: bool,
    /// Windows seen (closed) so far.
    pub windows: usize,
    /// Kept windows: total and (slot, count) pairs.
    pub kept: Vec<(u64, Vec<(u32, u32)>)>,
    pub skip: usize,
    pub keep: usize,
}

impl Profile {
    pub fn new(skip: usize, keep: usize) -> Profile {
        Profile { skip, keep, ..Profile::default() }
    }

    /// The slot of the instruction at `addr` (one per address).
    pub fn slot(&mut self, addr: u64) -> u32 {
        if let Some(&s) = self.slot_of.get(&addr) {
            return s;
        }
        let s = self.addrs.len() as u32;
        self.addrs.push(addr);
        self.counts.push(0);
        self.slot_of.insert(addr, s);
        s
    }

    pub fn begin(&mut self) {
        if self.open {
            self.end();
        }
        self.open = true;
    }

    pub fn executed(&mut self, slot: u32) {
        let c = &mut self.counts[slot as usize];
        if *c == 0 {
            self.touched.push(slot);
        }
        *c += 1;
    }

    pub fn end(&mut self) {
        if !self.open {
            return;
        }
        self.open = false;
        let keep = self.windows >= self.skip && self.kept.len() < self.keep;
        let mut total = 0u64;
        let mut entries = Vec::with_capacity(if keep { self.touched.len() } else { 0 });
        for &s in &self.touched {
            let c = std::mem::take(&mut self.counts[s as usize]);
            total += c as u64;
            if keep {
                entries.push((s, c));
            }
        }
        self.touched.clear();
        if keep {
            self.kept.push((total, entries));
        }
        self.windows += 1;
    }

    /// The kept window with the median total.
    pub fn median(&self) -> Option<usize> {
        let mut idx: Vec<usize> = (0..self.kept.len()).collect();
        idx.sort_by_key(|&i| self.kept[i].0);
        idx.get(idx.len() / 2).copied()
    }

    /// The output file: a header, `window TOTAL` per kept window, `median
    /// INDEX TOTAL`, then `insn ADDR COUNT` (hex address) per instruction
    /// of the median window, most executed first.
    pub fn write(&self, api: i32) -> String {
        let mut s = format!(
            "# prism-profile api={api} windows={} skipped={} kept={}\n",
            self.windows,
            self.skip.min(self.windows),
            self.kept.len()
        );
        for (t, _) in &self.kept {
            s.push_str(&format!("window {t}\n"));
        }
        if let Some(m) = self.median() {
            let (total, entries) = &self.kept[m];
            s.push_str(&format!("median {m} {total}\n"));
            let mut e = entries.clone();
            e.sort_by_key(|&(slot, c)| (std::cmp::Reverse(c), self.addrs[slot as usize]));
            for (slot, c) in e {
                s.push_str(&format!("insn {:x} {c}\n", self.addrs[slot as usize]));
            }
        }
        s
    }
}

static CORE: OnceLock<Core> = OnceLock::new();
static STATE: Mutex<Option<(Profile, Args)>> = Mutex::new(None);
/// Whether a window is open (read on every instruction before locking).
static OPEN: AtomicBool = AtomicBool::new(false);

fn state() -> std::sync::MutexGuard<'static, Option<(Profile, Args)>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parses the arguments, resolves the calls and registers the
/// callbacks, on a host `plugin_api` checked.
fn install(id: PluginId, _host: &HostInfo, generation: Generation, args: &[String]) -> Result<(), String> {
    let args = parse_args(args)?;
    // SAFETY: `HostInfo::check` found that QEMU serves `generation`.
    let core = plugin_api::keep(&CORE, unsafe { Core::resolve(generation) }?)?;
    *state() = Some((Profile::new(args.skip, args.keep), args));
    // SAFETY: `id` is the id QEMU gave this plugin.
    unsafe { core.register(id, on_tb_trans, on_exit) };
    Ok(())
}

plugin_api::declare_plugin!("profile-plugin", install);

extern "C" fn on_tb_trans(_id: PluginId, tb: *mut Opaque) {
    let Some(core) = CORE.get() else { return };
    let mut g = state();
    let Some((p, _)) = g.as_mut() else { return };
    // SAFETY: `tb` and its instruction handles are live during this callback.
    unsafe {
        for i in 0..(core.tb_n_insns)(tb) {
            let insn = (core.tb_get_insn)(tb, i);
            match core.marker(insn) {
                Some(m) => (core.register_vcpu_insn_exec_cb)(insn, on_marker, CB_NO_REGS, m as usize as *mut c_void),
                None => {
                    let slot = p.slot((core.insn_vaddr)(insn)) as usize;
                    (core.register_vcpu_insn_exec_cb)(insn, on_insn, CB_NO_REGS, slot as *mut c_void);
                }
            }
        }
    }
}

extern "C" fn on_marker(_vcpu: c_uint, tag: *mut c_void) {
    let mut g = state();
    let Some((p, _)) = g.as_mut() else { return };
    if tag as usize == Marker::JobBegin as usize {
        p.begin();
        OPEN.store(true, Ordering::Relaxed);
    } else {
        p.end();
        OPEN.store(false, Ordering::Relaxed);
    }
}

extern "C" fn on_insn(_vcpu: c_uint, slot: *mut c_void) {
    if !OPEN.load(Ordering::Relaxed) {
        return;
    }
    if let Some((p, _)) = state().as_mut() {
        p.executed(slot as usize as u32);
    }
}

extern "C" fn on_exit(_id: PluginId, _ud: *mut c_void) {
    let api = CORE.get().map_or(0, |c| c.generation.api());
    let g = state();
    let Some((p, a)) = g.as_ref() else { return };
    if let Err(e) = std::fs::write(&a.out, p.write(api)) {
        eprintln!("profile-plugin: error: cannot write {}: {e}", a.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_per_address_and_the_median_one_is_written() {
        let mut p = Profile::new(1, 10);
        let (a, b, c) = (p.slot(0x1000), p.slot(0xffff_8000_0000_1000), p.slot(0x1004));
        assert_eq!(p.slot(0x1000), a);
        // (Outside a window the callbacks do not call `executed`: OPEN is false.)
        for (n, extra) in [(5, 0), (3, 1), (3, 2), (3, 9)] {
            p.begin();
            for _ in 0..n {
                p.executed(a);
            }
            p.executed(b);
            for _ in 0..extra {
                p.executed(c);
            }
            p.end();
        }
        p.end(); // a stray end changes nothing
        assert_eq!(p.windows, 4);
        // The first window (the warm-up) is skipped.
        assert_eq!(p.kept.iter().map(|k| k.0).collect::<Vec<_>>(), vec![5, 6, 13]);
        assert_eq!(p.median(), Some(1));
        let out = p.write(1);
        assert!(
            out.starts_with("# prism-profile api=1 windows=4 skipped=1 kept=3\nwindow 5\nwindow 6\nwindow 13\n"),
            "{out}"
        );
        assert!(out.contains("median 1 6\ninsn 1000 3\ninsn 1004 2\ninsn ffff800000001000 1\n"), "{out}");
        // A begin inside an open window closes it first.
        p.begin();
        p.executed(a);
        p.begin();
        p.end();
        assert_eq!(p.windows, 6);
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_args(&["out=x", "skip=100"]).unwrap(), Args { out: "x".into(), skip: 100, keep: 2000 });
        assert!(parse_args(&["skip=1"]).unwrap_err().contains("out="));
        assert!(parse_args(&["out=x", "bogus=1"]).unwrap_err().contains("unknown"));
        assert!(parse_args(&["out=x", "keep=many"]).unwrap_err().contains("not a count"));
    }
}
