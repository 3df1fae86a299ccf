//! Benchmark figures: the serialized TSC reads that bracket one measured
//! iteration, and the one text line a benchmark prints per result.
//!
//! `just bench` compares Prism's `bench` task with a Linux benchmark run
//! under the same QEMU. Both sides time an iteration with the same two
//! instruction sequences ([`tsc_start`], [`tsc_end`]) and print the same
//! line, so the host has one reader ([`parse_line`]) for both consoles:
//!
//! ```text
//! bench NAME rounds=N min=A median=B p99=C max=D
//! ```
//!
//! Under QEMU `-icount shift=0` the guest TSC counts instructions, so the
//! figures are guest instructions (including the fixed cost of the two
//! reads, which the `empty` benchmark of both sides shows).

use core::fmt;

/// Order statistics of the samples of one benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub rounds: u64,
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub max: u64,
}

impl Summary {
    /// Sorts `samples` and takes min, median (element `n/2`), p99 (element
    /// `n*99/100`) and max; `None` for no samples.
    pub fn of(samples: &mut [u64]) -> Option<Summary> {
        samples.sort_unstable();
        let n = samples.len();
        let at = |i: usize| samples[i.min(n - 1)];
        (n > 0).then(|| Summary {
            rounds: n as u64,
            min: samples[0],
            median: at(n / 2),
            p99: at(n * 99 / 100),
            max: samples[n - 1],
        })
    }
}

/// The line of benchmark `name` (a word without spaces).
pub struct Line<'a>(pub &'a str, pub Summary);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let Line(name, s) = self;
        write!(f, "bench {name} rounds={} min={} median={} p99={} max={}", s.rounds, s.min, s.median, s.p99, s.max)
    }
}

/// Reads a line [`Line`] wrote (surrounding text on the console line, such
/// as a `\r`, is not allowed); `None` for any other line.
pub fn parse_line(line: &str) -> Option<(&str, Summary)> {
    let mut words = line.strip_prefix("bench ")?.split(' ');
    let name = words.next().filter(|n| !n.is_empty())?;
    let mut field = |key: &str| -> Option<u64> { words.next()?.strip_prefix(key)?.strip_prefix('=')?.parse().ok() };
    let s = Summary {
        rounds: field("rounds")?,
        min: field("min")?,
        median: field("median")?,
        p99: field("p99")?,
        max: field("max")?,
    };
    if words.next().is_some() || s.rounds == 0 || !(s.min <= s.median && s.median <= s.p99 && s.p99 <= s.max) {
        return None;
    }
    Some((name, s))
}

/// Serialized TSC read at the start of a measured interval (`lfence;
/// rdtsc`: earlier instructions have completed).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn tsc_start() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: lfence and rdtsc only order and read the time stamp counter.
    unsafe { core::arch::asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nostack, nomem)) };
    ((hi as u64) << 32) | lo as u64
}

/// Serialized TSC read at the end of a measured interval (`rdtscp; lfence`:
/// waits for earlier instructions, and later ones do not start early).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn tsc_end() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtscp and lfence read the TSC (and TSC_AUX into ecx) and
    // order instructions; no memory is touched.
    unsafe {
        core::arch::asm!("rdtscp", "lfence", out("eax") lo, out("edx") hi, out("ecx") _, options(nostack, nomem))
    };
    ((hi as u64) << 32) | lo as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_takes_order_statistics() {
        let mut v: std::vec::Vec<u64> = (1..=1000).rev().collect();
        let s = Summary::of(&mut v).unwrap();
        assert_eq!(s, Summary { rounds: 1000, min: 1, median: 501, p99: 991, max: 1000 });
        assert_eq!(Summary::of(&mut [7]).unwrap(), Summary { rounds: 1, min: 7, median: 7, p99: 7, max: 7 });
        assert_eq!(Summary::of(&mut []), None);
    }

    #[test]
    fn lines_round_trip_and_others_are_refused() {
        let s = Summary { rounds: 10000, min: 1, median: 2, p99: 3, max: 4 };
        let text = std::format!("{}", Line("ipc_call_registers", s));
        assert_eq!(text, "bench ipc_call_registers rounds=10000 min=1 median=2 p99=3 max=4");
        assert_eq!(parse_line(&text), Some(("ipc_call_registers", s)));
        for bad in [
            "bench x rounds=1 min=1 median=x p99=3 max=4",
            "bench x rounds=1 min=1 median=2 p99=3",
            "bench x rounds=1 min=1 median=2 p99=3 max=4 extra=5",
            "bench x rounds=1 min=5 median=2 p99=3 max=4",
            "bench x rounds=0 min=1 median=2 p99=3 max=4",
            "bench x rounds=1 median=1 min=2 p99=3 max=4",
            "bench  rounds=1 min=1 median=2 p99=3 max=4",
            "bench: TSC 1 Hz",
            "[    0.1] bench x rounds=1 min=1 median=2 p99=3 max=4",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_reads_count_forward() {
        let a = tsc_start();
        let b = tsc_end();
        assert!(b >= a);
    }
}
