//! When jobs are released and when they are late (TSC ticks).

/// A periodic release pattern: job `k` is released at `first + k * period`
/// and must end by its release plus `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub first: u64,
    pub period: u64,
    pub deadline: u64,
}

impl Schedule {
    /// Releases on the next multiple of `period` after `now`, so that
    /// tasks whose periods divide one another are released together at
    /// common instants (the critical instant of fixed-priority analysis).
    pub fn after(now: u64, period: u64, deadline: u64) -> Schedule {
        let period = period.max(1);
        Schedule { first: (now / period).saturating_add(1).saturating_mul(period), period, deadline }
    }

    /// The release time of job `k`.
    pub fn release(&self, k: u64) -> u64 {
        self.first.saturating_add(k.saturating_mul(self.period))
    }

    /// Whether job `k`, ending at `end`, missed its deadline.
    pub fn missed(&self, k: u64, end: u64) -> bool {
        end > self.release(k).saturating_add(self.deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn releases_on_the_period_grid() {
        let s = Schedule::after(1234, 1000, 800);
        assert_eq!((s.release(0), s.release(1), s.release(5)), (2000, 3000, 7000));
        assert!(!s.missed(0, 2800));
        assert!(s.missed(0, 2801));
        assert!(!s.missed(1, 3500));
        // Harmonic tasks started at different times meet at common instants.
        let t = Schedule::after(1500, 500, 500);
        assert_eq!((t.release(0), t.release(2)), (s.release(0), s.release(1)));
    }

    proptest! {
        #[test]
        fn first_release_is_after_now_and_at_most_a_period_later(now in 0u64..1 << 50, period in 1u64..1 << 30) {
            let s = Schedule::after(now, period, period);
            prop_assert!(s.first > now && s.first - now <= period && s.first.is_multiple_of(period));
        }
    }
}
