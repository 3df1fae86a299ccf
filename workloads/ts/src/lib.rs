//! Time-sharing load generators: tasks of role `ts` (demand paged by their
//! pager) that keep the caches, the memory bus and the kernel busy while
//! the RT tasks run, after IsolBench's `bandwidth` and `latency`
//! (Valsan, Yun, Farshchi: "Taming Non-blocking Caches to Improve
//! Isolation in Multicore Real-Time Systems", RTAS 2016).
//!
//! - `bandwidth`: sweeps a working set (`ws=`, default 4 MiB) line by line,
//!   reading (`access=read`, the default), writing (`write`) or both
//!   (`rdwr`), as fast as it can.
//! - `latency`: chases pointers through the working set in a random single
//!   cycle (one dependent load per line).
//! - `pingpong`: `side=pong` answers IPC calls forever; `side=ping
//!   peer=NAME` calls the pong task named `peer` in a loop.
//!
//! Each runs forever (the run ends when the RT tasks end), or for
//! `iterations=` sweeps / walks / calls, after which it prints what it did
//! and ends. The working set is the task's declared heap (`heap` in the
//! description must be at least `ws`); its pages are mapped on first touch.
#![cfg_attr(not(test), no_std)]

use harness::{Args, Error};

/// How the bandwidth thrasher touches each line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

/// The thrashers' parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Working set in bytes (a multiple of 64).
    pub ws: usize,
    pub access: Access,
    /// Sweeps or walks before ending; 0: forever.
    pub iterations: u64,
}

impl Params {
    /// From the task's arguments, checked against its heap of `heap` bytes.
    pub fn from_args(args: &Args<'_>, heap: u64) -> Result<Params, Error> {
        let ws = args.size("ws", 4 << 20)?;
        if ws < 128 || ws % 64 != 0 {
            return Err(Error::BadArg { key: "ws", why: "must be a multiple of 64 bytes, at least 128" });
        }
        if ws > heap {
            return Err(Error::Heap { need: ws as usize, left: heap as usize });
        }
        let access = match args.choice("access", &["read", "write", "rdwr"], "read")? {
            "write" => Access::Write,
            "rdwr" => Access::ReadWrite,
            _ => Access::Read,
        };
        Ok(Params { ws: ws as usize, access, iterations: args.number("iterations", 0)? })
    }
}

/// One sweep over `mem`, one access per 64-byte line; returns the sum of
/// what it read (so the reads cannot be dropped).
pub fn sweep(mem: &mut [u64], access: Access) -> u64 {
    let mut sum = 0u64;
    for line in mem.chunks_exact_mut(8) {
        let p = &mut line[0] as *mut u64;
        // SAFETY: `p` points into `mem`; volatile so that every sweep
        // really touches memory.
        unsafe {
            match access {
                Access::Read => sum = sum.wrapping_add(p.read_volatile()),
                Access::Write => p.write_volatile(sum),
                Access::ReadWrite => {
                    let v = p.read_volatile();
                    p.write_volatile(v.wrapping_add(1));
                    sum = sum.wrapping_add(v);
                }
            }
        }
    }
    sum
}

/// The thrashers' main program: the parameters from the task's
/// description, `setup` on the working set (the task's heap), then `once`
/// (one sweep or walk; it returns a value to sum, so nothing is optimised
/// away) `iterations` times or forever, and a line saying what it did.
#[cfg(target_os = "none")]
pub fn thrasher<S>(
    kind: &str,
    unit: &str,
    setup: impl FnOnce(&Params, &'static mut [u64]) -> S,
    mut once: impl FnMut(&mut S) -> u64,
) -> ! {
    use user_rt::println;
    let Some(i) = user_rt::info() else { user_rt::exit(1) };
    let p = match Params::from_args(&Args::new(i.args()), i.heap_size) {
        Ok(p) => p,
        Err(e) => {
            println!("{kind} {}: {e}", i.name());
            user_rt::exit(1)
        }
    };
    // SAFETY: the task's declared heap: page aligned, mapped by its pager
    // on first touch, used by nothing else, at least `ws` bytes (checked).
    let mem = unsafe { core::slice::from_raw_parts_mut(i.heap_base as *mut u64, p.ws / 8) };
    let mut state = setup(&p, mem);
    let t0 = abi::syscall::myself().1;
    let (mut n, mut sum) = (0u64, 0u64);
    while p.iterations == 0 || n < p.iterations {
        sum = sum.wrapping_add(once(&mut state));
        n += 1;
    }
    let t = abi::syscall::myself().1 - t0;
    let per_line = t / (n * (p.ws as u64 / 64)).max(1);
    println!(
        "{kind} {}: {n} {unit}(s) of {} bytes in {t} TSC ticks, {per_line} per line (sum {sum:#x})",
        i.name(),
        p.ws
    );
    user_rt::exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_sweeps() {
        let p = Params::from_args(&Args::new("ws=1M access=rdwr iterations=3"), 1 << 20).unwrap();
        assert_eq!(p, Params { ws: 1 << 20, access: Access::ReadWrite, iterations: 3 });
        let d = Params::from_args(&Args::new(""), 8 << 20).unwrap();
        assert_eq!((d.ws, d.access, d.iterations), (4 << 20, Access::Read, 0));
        assert!(matches!(Params::from_args(&Args::new("ws=2M"), 1 << 20), Err(Error::Heap { .. })));
        assert!(Params::from_args(&Args::new("ws=100"), 1 << 20).is_err());
        assert!(Params::from_args(&Args::new("access=none"), 8 << 20).is_err());
        let mut mem = vec![0u64; 64];
        assert_eq!(sweep(&mut mem, Access::ReadWrite), 0);
        assert_eq!(sweep(&mut mem, Access::Read), 8, "one access per line: 8 lines incremented once");
        assert_eq!(mem.iter().filter(|&&v| v == 1).count(), 8);
    }
}
