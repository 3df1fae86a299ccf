//! Performance counters: detection from CPUID, the MSR writes that program
//! the events of `abi::pmc`, and the `PMC` system call.
//!
//! Detection ([`detect`]) and the programming plan ([`plan`]) are
//! hardware-free and tested on the host with recorded CPUID values; the
//! bare-metal part ([`hw`]) reads CPUID, applies a plan through MSR probes
//! that survive a #GP (a hypervisor may advertise counters it does not
//! implement), checks every counter it reports live with a kernel-side
//! `rdpmc` probe, and only then sets CR4.PCE. So a task that reads only
//! live counters never faults, and where there is no PMU (QEMU TCG) nothing
//! is live and CR4.PCE stays clear.
//!
//! Supported: Intel architectural performance monitoring (CPUID leaf 0xA,
//! version 1 and up; fixed counters for cycles and instructions from
//! version 2), with the model-specific `L2_RQSTS.MISS` on the family-6
//! cores that define it (Haswell and later); AMD core performance counters
//! (`PerfCtrExtCore`, CPUID 0x8000_0001 ECX bit 23), with L2 misses on Zen
//! (family 0x17 and up). AMD counts L3 misses only in its separate L3 PMU,
//! so `LlcMisses` is not offered there. Everything else is "no PMU".

use abi::pmc::{Event, PmcInfo, Pmu as Kind};

/// The CPUID values detection needs (leaf numbers in the field names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpuid {
    /// Leaf 0: EBX, EDX, ECX spell the vendor.
    pub vendor: [u8; 12],
    /// Leaf 0 EAX: the highest basic leaf.
    pub max_leaf: u32,
    /// Leaf 1 EAX: family, model, stepping.
    pub leaf1_eax: u32,
    /// Leaf 0xA EAX, EBX, ECX, EDX (zero where `max_leaf < 0xA`).
    pub leaf_a: [u32; 4],
    /// Leaf 0x8000_0000 EAX: the highest extended leaf.
    pub max_ext_leaf: u32,
    /// Leaf 0x8000_0001 ECX.
    pub ext1_ecx: u32,
}

impl Cpuid {
    /// Display family (base plus extended where the base is 0xF).
    pub fn family(&self) -> u32 {
        let base = (self.leaf1_eax >> 8) & 0xf;
        if base == 0xf {
            base + ((self.leaf1_eax >> 20) & 0xff)
        } else {
            base
        }
    }

    /// Display model (with the extended model for families 6 and 0xF).
    pub fn model(&self) -> u32 {
        let base = (self.leaf1_eax >> 4) & 0xf;
        let base_family = (self.leaf1_eax >> 8) & 0xf;
        if base_family == 6 || base_family == 0xf {
            base | ((self.leaf1_eax >> 12) & 0xf0)
        } else {
            base
        }
    }
}

/// The PMU the CPU offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pmu {
    /// No usable counters, and why.
    None(&'static str),
    Intel {
        version: u8,
        /// General-purpose counters and their width.
        gp: u8,
        gp_width: u8,
        /// Fixed-function counters (version 2 and up) and their width.
        fixed: u8,
        fixed_width: u8,
        /// Architectural events offered (CPUID.0xA EBX inverted, within
        /// the length EAX gives): bit 0 core cycles, 1 instructions, 4 LLC
        /// misses.
        arch_events: u32,
        /// `L2_RQSTS.MISS` (0x24/0x3F) is defined on this model.
        l2_miss: bool,
    },
    Amd {
        /// Core counters (6 with `PerfCtrExtCore`).
        counters: u8,
        /// L2 misses countable (Zen and later).
        l2_miss: bool,
    },
}

/// Family-6 Intel models whose core PMU defines `L2_RQSTS.MISS` as event
/// 0x24, umask 0x3F (Haswell through Emerald Rapids, from the SDM's
/// per-model event tables).
const INTEL_L2_MISS_MODELS: [u32; 30] = [
    0x3c, 0x3f, 0x45, 0x46, // Haswell
    0x3d, 0x47, 0x4f, 0x56, // Broadwell
    0x4e, 0x5e, 0x55, // Skylake
    0x8e, 0x9e, 0xa5, 0xa6, // Kaby, Coffee, Comet Lake
    0x66, 0x6a, 0x6c, 0x7d, 0x7e, // Cannon, Ice Lake
    0x8c, 0x8d, 0xa7, // Tiger, Rocket Lake
    0x97, 0x9a, 0xb7, 0xba, 0xbf, // Alder, Raptor Lake (P-cores)
    0x8f, 0xcf, // Sapphire, Emerald Rapids
];

/// What the CPU offers, from its CPUID values.
pub fn detect(c: &Cpuid) -> Pmu {
    match &c.vendor {
        b"GenuineIntel" => {
            if c.max_leaf < 0xa {
                return Pmu::None("Intel CPU without CPUID leaf 0xA");
            }
            let [eax, ebx, _, edx] = c.leaf_a;
            let version = eax as u8;
            let gp = (eax >> 8) as u8;
            if version == 0 || gp == 0 {
                return Pmu::None("CPUID leaf 0xA reports no architectural performance monitoring");
            }
            let len = (eax >> 24) & 0xff;
            let in_len = if len >= 32 { u32::MAX } else { (1u32 << len) - 1 };
            let (fixed, fixed_width) = if version >= 2 { ((edx & 0x1f) as u8, (edx >> 5) as u8) } else { (0, 0) };
            Pmu::Intel {
                version,
                gp,
                gp_width: (eax >> 16) as u8,
                fixed,
                fixed_width,
                arch_events: !ebx & in_len,
                l2_miss: c.family() == 6 && INTEL_L2_MISS_MODELS.contains(&c.model()),
            }
        }
        b"AuthenticAMD" | b"HygonGenuine" => {
            if c.max_ext_leaf < 0x8000_0001 || c.ext1_ecx & (1 << 23) == 0 {
                return Pmu::None("AMD CPU without core performance counters (PerfCtrExtCore)");
            }
            Pmu::Amd { counters: 6, l2_miss: c.family() >= 0x17 }
        }
        _ => Pmu::None("no known performance-monitoring interface for this CPU vendor"),
    }
}

/// MSRs (Intel SDM vol. 4; AMD APM vol. 2, "Performance Counters").
pub mod msr {
    pub const IA32_PERFEVTSEL0: u32 = 0x186;
    pub const IA32_PMC0: u32 = 0xc1;
    pub const IA32_FIXED_CTR0: u32 = 0x309;
    pub const IA32_FIXED_CTR_CTRL: u32 = 0x38d;
    pub const IA32_PERF_GLOBAL_CTRL: u32 = 0x38f;
    pub const AMD_PERF_CTL0: u32 = 0xc001_0200;
    pub const AMD_PERF_CTR0: u32 = 0xc001_0201;
}

/// Event-select bits shared by Intel and AMD: count in ring 3 and ring 0,
/// enabled.
const USR_OS_EN: u64 = 1 << 16 | 1 << 17 | 1 << 22;
/// `rdpmc` index bit of Intel's fixed counters.
const FIXED: u32 = 1 << 30;
/// Most general-purpose counters the stop sequence clears.
const MAX_GP: u8 = 8;

/// MSR writes, in order, and what the counters count once they are done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub writes: heapless::Vec<(u32, u64), 32>,
    pub info: PmcInfo,
}

/// The events `pmu` can count (bit per `abi::pmc::Event`).
pub fn offered(pmu: &Pmu) -> u8 {
    let mut m = 0;
    for e in Event::ALL {
        let ok = match *pmu {
            Pmu::None(_) => false,
            Pmu::Intel { arch_events, l2_miss, .. } => match e {
                Event::Cycles => arch_events & 1 != 0,
                Event::Instructions => arch_events & 2 != 0,
                Event::L2Misses => l2_miss,
                Event::LlcMisses => arch_events & 16 != 0,
            },
            Pmu::Amd { l2_miss, .. } => match e {
                Event::Cycles | Event::Instructions => true,
                Event::L2Misses => l2_miss,
                Event::LlcMisses => false,
            },
        };
        if ok {
            m |= e.bit();
        }
    }
    m
}

/// Event-select code and unit mask of `e`.
fn code(pmu: &Pmu, e: Event) -> (u64, u64) {
    match (pmu, e) {
        (Pmu::Intel { .. }, Event::Cycles) => (0x3c, 0),
        (Pmu::Intel { .. }, Event::Instructions) => (0xc0, 0),
        (Pmu::Intel { .. }, Event::L2Misses) => (0x24, 0x3f),
        (Pmu::Intel { .. }, Event::LlcMisses) => (0x2e, 0x41),
        (_, Event::Cycles) => (0x76, 0),
        (_, Event::Instructions) => (0xc0, 0),
        // Zen: L2CacheReqStat, data-cache and instruction-cache misses in L2.
        (_, _) => (0x64, 0x09),
    }
}

/// The writes that stop every counter a plan may have started, then those
/// that count the events of `want` that `pmu` offers (as many as it has
/// counters for, in event order).
pub fn plan(pmu: &Pmu, want: u8) -> Plan {
    let mut w: heapless::Vec<(u32, u64), 32> = heapless::Vec::new();
    let mut push = |m: u32, v: u64| {
        // Capacity covers the largest sequence (8 GP + 3 fixed, twice).
        let _ = w.push((m, v));
    };
    let mut info = PmcInfo { pmu: Kind::None, offered: offered(pmu), live: 0, index: [0; 4], width: [0; 4] };
    let want = want & info.offered;
    match *pmu {
        Pmu::None(_) => {}
        Pmu::Intel { version, gp, gp_width, fixed, fixed_width, .. } => {
            info.pmu = Kind::Intel;
            if version >= 2 {
                push(msr::IA32_PERF_GLOBAL_CTRL, 0);
            }
            if fixed > 0 {
                push(msr::IA32_FIXED_CTR_CTRL, 0);
            }
            for n in 0..gp.min(MAX_GP) {
                push(msr::IA32_PERFEVTSEL0 + n as u32, 0);
            }
            let (mut next_gp, mut fixed_ctrl, mut global) = (0u8, 0u64, 0u64);
            for e in Event::ALL.into_iter().filter(|e| want & e.bit() != 0) {
                // Fixed counter 0 counts instructions, 1 core cycles.
                let fixed_n = match e {
                    Event::Instructions => Some(0u32),
                    Event::Cycles => Some(1),
                    _ => None,
                }
                .filter(|&n| n < fixed as u32);
                if let Some(n) = fixed_n {
                    push(msr::IA32_FIXED_CTR0 + n, 0);
                    fixed_ctrl |= 0b11 << (4 * n);
                    global |= 1 << (32 + n);
                    info.index[e as usize] = FIXED | n;
                    info.width[e as usize] = fixed_width;
                } else if next_gp < gp.min(MAX_GP) {
                    let n = next_gp as u32;
                    next_gp += 1;
                    let (ev, umask) = code(pmu, e);
                    push(msr::IA32_PMC0 + n, 0);
                    push(msr::IA32_PERFEVTSEL0 + n, ev | umask << 8 | USR_OS_EN);
                    global |= 1 << n;
                    info.index[e as usize] = n;
                    info.width[e as usize] = gp_width;
                } else {
                    continue;
                }
                info.live |= e.bit();
            }
            if fixed_ctrl != 0 {
                push(msr::IA32_FIXED_CTR_CTRL, fixed_ctrl);
            }
            if version >= 2 && global != 0 {
                push(msr::IA32_PERF_GLOBAL_CTRL, global);
            }
        }
        Pmu::Amd { counters, .. } => {
            info.pmu = Kind::Amd;
            for n in 0..counters as u32 {
                push(msr::AMD_PERF_CTL0 + 2 * n, 0);
            }
            let wanted = Event::ALL.into_iter().filter(|e| want & e.bit() != 0);
            for (next, e) in (0..counters as u32).zip(wanted) {
                let (ev, umask) = code(pmu, e);
                push(msr::AMD_PERF_CTR0 + 2 * next, 0);
                push(msr::AMD_PERF_CTL0 + 2 * next, (ev & 0xff) | umask << 8 | USR_OS_EN | (ev >> 8) << 32);
                info.index[e as usize] = next;
                info.width[e as usize] = 48;
                info.live |= e.bit();
            }
        }
    }
    Plan { writes: w, info }
}

/// The bare-metal side: CPUID, MSR probes, CR4.PCE and the system call.
#[cfg(target_os = "none")]
pub mod hw {
    use super::{detect, plan, Cpuid, Plan, Pmu};
    use crate::arch::cpu;
    use abi::pmc::{Event, PmcInfo};

    static PMU: spin::Once<Pmu> = spin::Once::new();
    static LIVE: spin::Mutex<PmcInfo> = spin::Mutex::new(PmcInfo::NONE);

    fn read_cpuid() -> Cpuid {
        use raw_cpuid::native_cpuid::cpuid_count;
        let l0 = cpuid_count(0, 0);
        let mut vendor = [0u8; 12];
        vendor[..4].copy_from_slice(&l0.ebx.to_le_bytes());
        vendor[4..8].copy_from_slice(&l0.edx.to_le_bytes());
        vendor[8..].copy_from_slice(&l0.ecx.to_le_bytes());
        let leaf_a = if l0.eax >= 0xa {
            let r = cpuid_count(0xa, 0);
            [r.eax, r.ebx, r.ecx, r.edx]
        } else {
            [0; 4]
        };
        let max_ext_leaf = cpuid_count(0x8000_0000, 0).eax;
        let ext1_ecx = if max_ext_leaf >= 0x8000_0001 { cpuid_count(0x8000_0001, 0).ecx } else { 0 };
        Cpuid { vendor, max_leaf: l0.eax, leaf1_eax: cpuid_count(1, 0).eax, leaf_a, max_ext_leaf, ext1_ecx }
    }

    /// The PMU, detected on first use.
    fn pmu() -> Pmu {
        *PMU.call_once(|| detect(&read_cpuid()))
    }

    /// Detects the PMU (at boot) and says what it found.
    pub fn init() {
        match pmu() {
            Pmu::None(why) => crate::kprintln!("pmc: none ({why}); job records say \"not available\""),
            p => crate::kprintln!(
                "pmc: {:?}, events {:#06b} offered (cycles, instructions, L2, LLC misses); off until the root task programs them",
                p,
                super::offered(&p)
            ),
        }
    }

    /// Applies `p`; false if an MSR write faulted.
    fn apply(p: &Plan) -> bool {
        p.writes.iter().all(|&(m, v)| cpu::wrmsr_probe(m, v))
    }

    /// Every live counter reads without a fault, and cycles and
    /// instructions, where live, advance over a short loop (a hypervisor
    /// may accept the MSR writes and count nothing).
    fn counting(info: &PmcInfo) -> bool {
        let live = || Event::ALL.into_iter().filter(|&e| info.is_live(e));
        let mut before = [0u64; 4];
        for e in live() {
            match cpu::rdpmc_probe(info.index[e as usize]) {
                Some(v) => before[e as usize] = v,
                None => return false,
            }
        }
        for i in 0..1000u64 {
            core::hint::black_box(i);
        }
        live().filter(|&e| matches!(e, Event::Cycles | Event::Instructions)).all(|e| {
            cpu::rdpmc_probe(info.index[e as usize])
                .and_then(|v| info.delta(e, before[e as usize], v))
                .is_some_and(|d| d > 0)
        })
    }

    /// Programs the events of `want` (0: stop); returns what counts now.
    pub fn program(want: u8) -> PmcInfo {
        let pmu = pmu();
        let mut live = LIVE.lock();
        cpu::set_user_pmc(false);
        let p = plan(&pmu, want);
        let mut info = p.info;
        let probed = apply(&p) && counting(&info);
        if !probed {
            crate::kprintln!("pmc: the CPU refused the counter MSRs or rdpmc; counters off");
            // Best effort: stop whatever the plan started.
            let _ = apply(&plan(&pmu, 0));
            info.live = 0;
        }
        cpu::set_user_pmc(info.live != 0);
        *live = info;
        info
    }

    /// What counts now.
    pub fn info() -> PmcInfo {
        let info = *LIVE.lock();
        if info.pmu == abi::pmc::Pmu::None {
            // Never programmed: what is offered, nothing live.
            return plan(&pmu(), 0).info;
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::pmc::Pmu as Kind;

    fn intel(leaf1_eax: u32, leaf_a: [u32; 4]) -> Cpuid {
        Cpuid {
            vendor: *b"GenuineIntel",
            max_leaf: 0x16,
            leaf1_eax,
            leaf_a,
            max_ext_leaf: 0x8000_0008,
            ext1_ecx: 0x121,
        }
    }

    /// CPUID of an Intel Core i7-8700 (Coffee Lake, family 6 model 0x9E):
    /// leaf 1 EAX 0x000906EA; leaf 0xA: version 4, 4 GP counters of 48
    /// bits, EBX length 7 with every event available, 3 fixed of 48 bits.
    const COFFEE_LAKE: (u32, [u32; 4]) = (0x0009_06ea, [0x0730_0404, 0, 0, 0x0000_0603]);

    /// QEMU TCG `-cpu max`: an AMD-flavoured model without PerfCtrExtCore.
    fn qemu_tcg() -> Cpuid {
        Cpuid {
            vendor: *b"AuthenticAMD",
            max_leaf: 0xd,
            leaf1_eax: 0x0006_06f1,
            leaf_a: [0; 4],
            max_ext_leaf: 0x8000_0008,
            ext1_ecx: 0x0000_01f3,
        }
    }

    #[test]
    fn coffee_lake_offers_everything_on_fixed_and_gp_counters() {
        let c = intel(COFFEE_LAKE.0, COFFEE_LAKE.1);
        assert_eq!((c.family(), c.model()), (6, 0x9e));
        let pmu = detect(&c);
        assert_eq!(
            pmu,
            Pmu::Intel { version: 4, gp: 4, gp_width: 48, fixed: 3, fixed_width: 48, arch_events: 0x7f, l2_miss: true }
        );
        let p = plan(&pmu, abi::pmc::ALL_EVENTS as u8);
        assert_eq!(p.info.pmu, Kind::Intel);
        assert_eq!((p.info.offered, p.info.live), (0b1111, 0b1111));
        // Cycles on fixed counter 1, instructions on fixed counter 0, the
        // cache misses on GP counters 0 and 1.
        assert_eq!(p.info.index, [1 << 30 | 1, 1 << 30, 0, 1]);
        assert_eq!(p.info.width, [48; 4]);
        let w = &p.writes;
        // Stop first: global, fixed control, the four event selects.
        assert_eq!(&w[..6], &[(0x38f, 0), (0x38d, 0), (0x186, 0), (0x187, 0), (0x188, 0), (0x189, 0)]);
        assert!(w.contains(&(0x186, 0x24 | 0x3f << 8 | USR_OS_EN)), "L2_RQSTS.MISS on PMC0: {w:?}");
        assert!(w.contains(&(0x187, 0x2e | 0x41 << 8 | USR_OS_EN)), "LLC misses on PMC1: {w:?}");
        assert_eq!(w[w.len() - 2..], [(0x38d, 0x33), (0x38f, 0b11 | 0b11 << 32)]);
    }

    #[test]
    fn intel_version_1_uses_general_counters_only_and_runs_out_of_them() {
        // Version 1, 2 GP counters of 40 bits, 7 events, all available.
        let pmu = detect(&intel(0x0000_06f6, [0x0728_0201, 0, 0, 0]));
        let p = plan(&pmu, abi::pmc::ALL_EVENTS as u8);
        // Cycles and instructions take both counters; no L2 event on this
        // model, and no counter left for LLC misses.
        assert_eq!((p.info.offered, p.info.live), (0b1011, 0b0011));
        assert_eq!(p.info.index[..2], [0, 1]);
        assert_eq!(p.info.width[..2], [40, 40]);
        assert!(!p.writes.iter().any(|&(m, _)| m == 0x38f || m == 0x38d), "no global or fixed MSRs on version 1");
    }

    #[test]
    fn unavailable_architectural_events_are_not_offered() {
        // EBX bit 4 set: LLC misses unavailable; EBX length 2 hides the rest.
        let pmu = detect(&intel(0x0009_06ea, [0x0230_0404, 0x10, 0, 0x603]));
        assert_eq!(offered(&pmu), 0b0111);
        let pmu = detect(&intel(0x0009_06ea, [0x0730_0404, 0x10, 0, 0x603]));
        assert_eq!(offered(&pmu), 0b0111);
    }

    #[test]
    fn amd_zen_counts_on_core_counters_without_llc() {
        // AMD EPYC 7763 (Zen 3, family 0x19): leaf 1 EAX 0x00A00F11.
        let c = Cpuid {
            vendor: *b"AuthenticAMD",
            max_leaf: 0x10,
            leaf1_eax: 0x00a0_0f11,
            leaf_a: [0; 4],
            max_ext_leaf: 0x8000_0023,
            ext1_ecx: 0x75c2_37ff,
        };
        assert_eq!(c.family(), 0x19);
        let pmu = detect(&c);
        assert_eq!(pmu, Pmu::Amd { counters: 6, l2_miss: true });
        let p = plan(&pmu, abi::pmc::ALL_EVENTS as u8);
        assert_eq!((p.info.pmu, p.info.offered, p.info.live), (Kind::Amd, 0b0111, 0b0111));
        assert_eq!(p.info.index[..3], [0, 1, 2]);
        assert!(p.writes.contains(&(0xc001_0200, 0x76 | USR_OS_EN)));
        assert!(p.writes.contains(&(0xc001_0204, 0x64 | 0x09 << 8 | USR_OS_EN)));
    }

    #[test]
    fn no_pmu_under_qemu_tcg_or_an_empty_leaf_a() {
        assert!(matches!(detect(&qemu_tcg()), Pmu::None(_)));
        assert!(matches!(detect(&intel(0x0009_06ea, [0; 4])), Pmu::None(_)));
        let mut old = intel(0x0000_06f6, [0; 4]);
        old.max_leaf = 9;
        assert!(matches!(detect(&old), Pmu::None(_)));
        let mut other = qemu_tcg();
        other.vendor = *b"CentaurHauls";
        assert!(matches!(detect(&other), Pmu::None(_)));
        for c in [qemu_tcg(), intel(0x0009_06ea, [0; 4])] {
            let p = plan(&detect(&c), abi::pmc::ALL_EVENTS as u8);
            assert_eq!(p.info, abi::pmc::PmcInfo::NONE);
            assert!(p.writes.is_empty(), "no MSR is touched without a PMU");
        }
    }

    #[test]
    fn stopping_writes_only_zeros() {
        let pmu = detect(&intel(COFFEE_LAKE.0, COFFEE_LAKE.1));
        let p = plan(&pmu, 0);
        assert_eq!(p.info.live, 0);
        assert!(p.writes.iter().all(|&(_, v)| v == 0));
        let p = plan(&Pmu::Amd { counters: 6, l2_miss: false }, 0);
        assert_eq!(p.writes.len(), 6);
    }
}
