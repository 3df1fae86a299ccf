//! One measured job: serialized timestamps with the cache-model markers
//! inside the same `asm!` blocks, the preemption count and the performance
//! counters around them.

use crate::Workload;
use abi::pmc::{Event, PmcInfo};
use abi::sys::attr;
use abi::syscall;
use abi::{job_begin_asm, job_end_asm, ThreadId};
use record::{Counter, Pmc};

/// What one job measured.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub start: u64,
    pub end: u64,
    pub preemptions: u32,
    pub pmc: Pmc,
}

/// What the measurement needs to know once.
pub struct Probe {
    pub me: ThreadId,
    pub pmc: PmcInfo,
    /// `rdtscp` exists (CPUID 0x8000_0001 EDX bit 27).
    rdtscp: bool,
}

/// The record's counter for a kernel event (same order).
pub fn counter(e: Event) -> Counter {
    Counter::ALL[e as usize]
}

impl Probe {
    pub fn new() -> Probe {
        let rdtscp =
            raw_cpuid::CpuId::new().get_extended_processor_and_feature_identifiers().is_some_and(|f| f.has_rdtscp());
        Probe { me: syscall::myself().0, pmc: syscall::pmc_info(), rdtscp }
    }

    /// The record's PMC set: the live counters.
    pub fn pmc_set(&self) -> record::PmcSet {
        Event::ALL.into_iter().filter(|&e| self.pmc.is_live(e)).fold(record::PmcSet::NONE, |s, e| s.with(counter(e)))
    }

    /// The current TSC (unserialized; for release times).
    pub fn now() -> u64 {
        // SAFETY: rdtsc reads the time-stamp counter, nothing else.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    fn preemptions(&self) -> u64 {
        syscall::thread_info(self.me, attr::PREEMPTIONS).map_or(0, |(n, _)| n)
    }

    #[inline(always)]
    fn counters(&self) -> [Option<u64>; 4] {
        Event::ALL.map(|e| self.pmc.read(e))
    }

    /// `lfence; rdtsc`, then the `JobBegin` marker: nothing of the job can
    /// start before the timestamp, and the model's window opens after it.
    #[inline(always)]
    fn begin() -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: lfence, rdtsc and the marker NOP touch only eax/edx. The
        // block is not `nomem`, so the compiler keeps the job's memory
        // accesses after it.
        unsafe {
            core::arch::asm!("lfence", "rdtsc", job_begin_asm!(), out("eax") lo, out("edx") hi,
                             options(nostack, preserves_flags))
        };
        (hi as u64) << 32 | lo as u64
    }

    /// The `JobEnd` marker, then `rdtscp; lfence` (waits for the job's
    /// instructions; later ones wait for the timestamp).
    #[inline(always)]
    fn end(&self) -> u64 {
        let (lo, hi): (u32, u32);
        if self.rdtscp {
            // SAFETY: the marker NOP, rdtscp (eax, edx, ecx) and lfence; not
            // `nomem`, so the job's accesses stay before it.
            unsafe {
                core::arch::asm!(job_end_asm!(), "rdtscp", "lfence", out("eax") lo, out("edx") hi, out("ecx") _,
                                 options(nostack, preserves_flags))
            };
        } else {
            // SAFETY: as above, with lfence before rdtsc on a CPU without
            // rdtscp.
            unsafe {
                core::arch::asm!(job_end_asm!(), "lfence", "rdtsc", "lfence", out("eax") lo, out("edx") hi,
                                 options(nostack, preserves_flags))
            };
        }
        (hi as u64) << 32 | lo as u64
    }

    /// Runs and measures one job of `w`.
    #[inline(never)]
    pub fn job<W: Workload>(&self, w: &mut W) -> Sample {
        let p0 = self.preemptions();
        let c0 = self.counters();
        let start = Self::begin();
        w.job();
        let end = self.end();
        let c1 = self.counters();
        let p1 = self.preemptions();
        let mut pmc = Pmc::default();
        for e in Event::ALL {
            let (a, b) = (c0[e as usize], c1[e as usize]);
            pmc.set(counter(e), a.zip(b).and_then(|(a, b)| self.pmc.delta(e, a, b)));
        }
        Sample { start, end, preemptions: p1.saturating_sub(p0) as u32, pmc }
    }

    /// Sleeps until the TSC reaches `t` (a closed receive from itself with
    /// a timeout; nobody sends to it).
    pub fn sleep_until(&self, t: u64) {
        loop {
            let now = Self::now();
            if now >= t {
                return;
            }
            let _ = syscall::receive(self.me, abi::Timeout::ticks(t - now));
        }
    }
}

/// What the guest can tell about where it runs, for the record header:
/// the hypervisor's CPUID signature, or `bare` without one.
pub fn mode_hint() -> &'static str {
    use raw_cpuid::{CpuId, Hypervisor};
    let c = CpuId::new();
    if !c.get_feature_info().is_some_and(|f| f.has_hypervisor()) {
        return "bare";
    }
    match c.get_hypervisor_info().map(|h| h.identify()) {
        Some(Hypervisor::QEMU) => "tcg",
        Some(Hypervisor::KVM) => "kvm",
        Some(Hypervisor::Xen) => "xen",
        Some(Hypervisor::VMware) => "vmware",
        Some(Hypervisor::HyperV) => "hyperv",
        _ => "vm",
    }
}
