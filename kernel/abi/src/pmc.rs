//! Performance counters: which events the kernel programs, and how ring 3
//! reads them.
//!
//! The kernel detects the PMU at boot (Intel architectural performance
//! monitoring, CPUID leaf 0xA; AMD core performance counters, CPUID
//! 0x8000_0001 ECX bit 23) and programs nothing until a thread holding
//! [`crate::sys::rights::PMC`] (the root task) asks with [`PROGRAM`]. Then
//! the counters count in every ring, globally (not per thread), and user
//! code may read them with `rdpmc` (CR4.PCE is set only while counters are
//! live). A thread reads a counter only when [`PmcInfo::live`] says so:
//! where there is no PMU (QEMU TCG, most nested VMs) nothing is live, and
//! a counter that is not live is "not available", never zero.

/// `PMC` operation: return the [`PmcInfo`] (anyone).
pub const INFO: u64 = 0;
/// `PMC` operation: program the events of mask `rsi` (0 stops them all).
pub const PROGRAM: u64 = 1;

/// An event the kernel knows how to program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Event {
    /// Unhalted core cycles.
    Cycles = 0,
    /// Instructions retired.
    Instructions = 1,
    /// Misses of the L2 cache (demand data and instruction requests).
    L2Misses = 2,
    /// Misses of the last-level cache.
    LlcMisses = 3,
}

impl Event {
    /// Every event, in mask-bit order.
    pub const ALL: [Event; 4] = [Event::Cycles, Event::Instructions, Event::L2Misses, Event::LlcMisses];

    /// The event's bit in a mask.
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Every event.
pub const ALL_EVENTS: u64 = 0b1111;

/// Which kind of PMU the kernel found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Pmu {
    /// No usable counters.
    None = 0,
    /// Intel architectural performance monitoring (CPUID leaf 0xA).
    Intel = 1,
    /// AMD core performance counters (`PerfCtrExtCore`).
    Amd = 2,
}

/// What the counters count now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmcInfo {
    pub pmu: Pmu,
    /// Events the PMU could count if asked (bit per [`Event`]).
    pub offered: u8,
    /// Events being counted now: only these may be read.
    pub live: u8,
    /// `rdpmc` counter index (ECX) of each event.
    pub index: [u32; 4],
    /// Counter width in bits of each event (deltas wrap at `2^width`).
    pub width: [u8; 4],
}

impl PmcInfo {
    /// No PMU.
    pub const NONE: PmcInfo = PmcInfo { pmu: Pmu::None, offered: 0, live: 0, index: [0; 4], width: [0; 4] };

    /// Whether `e` is being counted.
    pub const fn is_live(&self, e: Event) -> bool {
        self.live & e.bit() != 0
    }

    /// The three result words of the `PMC` call (`rax`, `rsi`, `rdx`);
    /// the first stays below 2^56, so it never reads as an error code.
    pub const fn to_words(&self) -> [u64; 3] {
        let w = &self.width;
        [
            self.pmu as u64
                | (self.offered as u64) << 8
                | (self.live as u64) << 16
                | (w[0] as u64) << 24
                | (w[1] as u64) << 32
                | (w[2] as u64) << 40
                | (w[3] as u64) << 48,
            self.index[0] as u64 | (self.index[1] as u64) << 32,
            self.index[2] as u64 | (self.index[3] as u64) << 32,
        ]
    }

    /// Decodes [`PmcInfo::to_words`]; an unknown PMU kind reads as none.
    pub const fn from_words(w: [u64; 3]) -> PmcInfo {
        let pmu = match w[0] as u8 {
            1 => Pmu::Intel,
            2 => Pmu::Amd,
            _ => return PmcInfo::NONE,
        };
        const fn b(x: u64, s: u32) -> u8 {
            (x >> s) as u8
        }
        PmcInfo {
            pmu,
            offered: b(w[0], 8) & ALL_EVENTS as u8,
            live: b(w[0], 16) & ALL_EVENTS as u8,
            index: [w[1] as u32, (w[1] >> 32) as u32, w[2] as u32, (w[2] >> 32) as u32],
            width: [b(w[0], 24), b(w[0], 32), b(w[0], 40), b(w[0], 48)],
        }
    }

    /// Counter `e` counted from `start` to `end`, across one wrap at its
    /// width; `None` if `e` is not live.
    pub const fn delta(&self, e: Event, start: u64, end: u64) -> Option<u64> {
        if !self.is_live(e) {
            return None;
        }
        let w = self.width[e as usize] as u32;
        let mask = if w == 0 || w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
        Some(end.wrapping_sub(start) & mask)
    }

    /// Reads counter `e` with `rdpmc` (`None` if it is not live, so a
    /// missing PMU never faults the caller).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn read(&self, e: Event) -> Option<u64> {
        if !self.is_live(e) {
            return None;
        }
        let (lo, hi): (u32, u32);
        // SAFETY: the kernel reports an event live only after it programmed
        // the counter, probed this index with `rdpmc` itself and set
        // CR4.PCE, so the instruction cannot fault; it reads no memory.
        unsafe {
            core::arch::asm!("rdpmc", in("ecx") self.index[e as usize], out("eax") lo, out("edx") hi,
                             options(nomem, nostack, preserves_flags))
        };
        Some((hi as u64) << 32 | lo as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_round_trips_through_words() {
        let i = PmcInfo {
            pmu: Pmu::Intel,
            offered: 0b1111,
            live: 0b1011,
            index: [1 << 30 | 1, 1 << 30, 0, 1],
            width: [48, 48, 40, 40],
        };
        let w = i.to_words();
        assert!((w[0] as i64) >= 0);
        assert_eq!(PmcInfo::from_words(w), i);
        assert_eq!(PmcInfo::from_words(PmcInfo::NONE.to_words()), PmcInfo::NONE);
        assert_eq!(PmcInfo::from_words([7, 1, 2]), PmcInfo::NONE);
    }

    #[test]
    fn deltas_wrap_at_the_width_and_dead_counters_are_none() {
        let i = PmcInfo { pmu: Pmu::Amd, offered: 0b0011, live: 0b0001, index: [0, 1, 0, 0], width: [48, 48, 0, 0] };
        assert_eq!(i.delta(Event::Cycles, 10, 25), Some(15));
        assert_eq!(i.delta(Event::Cycles, (1 << 48) - 5, 3), Some(8));
        assert_eq!(i.delta(Event::Instructions, 0, 5), None);
        assert_eq!(PmcInfo::NONE.delta(Event::LlcMisses, 0, 0), None);
    }
}
