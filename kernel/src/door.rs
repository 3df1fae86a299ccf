//! The reentrancy check of the one door to kernel state
//! (`thread::with_kernel`, after Hubris' `with_task_table`), kept apart
//! from the state it guards so that it compiles, and is tested, on the
//! host.
//!
//! A second entry while the door is open would hand out a second live
//! `&mut` to the kernel's state. Where debug assertions are on (the
//! overflow-checked kernel, on which `just test` runs the whole in-guest
//! suite, and every host test) [`Door::pass`] stops with a panic there;
//! the release kernel, on the IPC hot path, does not pay for the check.

/// Whether someone is inside the door (only where the check runs).
pub struct Door {
    #[cfg(debug_assertions)]
    open: core::sync::atomic::AtomicBool,
}

/// What a nested entry stops with.
pub const ENTERED_TWICE: &str = "kernel state entered twice";

impl Door {
    pub const fn new() -> Door {
        Door {
            #[cfg(debug_assertions)]
            open: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs `f` inside the door; panics (where debug assertions are on)
    /// if the door is already open.
    #[inline(always)]
    pub fn pass<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(debug_assertions)]
        {
            use core::sync::atomic::Ordering::Relaxed;
            // One CPU, interrupts off in the kernel: a plain load and
            // store do; the NMI handler never enters.
            assert!(!self.open.load(Relaxed), "{}", ENTERED_TWICE);
            self.open.store(true, Relaxed);
        }
        let r = f();
        #[cfg(debug_assertions)]
        self.open.store(false, core::sync::atomic::Ordering::Relaxed);
        r
    }
}

impl Default for Door {
    fn default() -> Door {
        Door::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_one_after_the_other_pass() {
        let d = Door::new();
        assert_eq!(d.pass(|| 1) + d.pass(|| 2), 3);
    }

    #[test]
    #[should_panic(expected = "kernel state entered twice")]
    fn a_nested_entry_stops_the_kernel() {
        let d = Door::new();
        d.pass(|| d.pass(|| ()));
    }
}
