//! Thread ids: a slot index and a version. The kernel bumps a slot's
//! version when its thread is deleted, so a stale id is an error, never a
//! different thread.

/// A thread id as it crosses the syscall boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct ThreadId(pub u64);

/// Versions at and above this mark pseudo-thread ids (interrupt sources).
pub const IRQ_VERSION: u32 = 0xffff_fff0;

impl ThreadId {
    /// No thread: "do not send" / "do not receive".
    pub const NIL: ThreadId = ThreadId(0);
    /// Any sender: an open receive.
    pub const ANY: ThreadId = ThreadId(u64::MAX);

    pub const fn new(index: u32, version: u32) -> ThreadId {
        ThreadId(((version as u64) << 32) | index as u64)
    }

    pub const fn index(self) -> u32 {
        self.0 as u32
    }

    pub const fn version(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub const fn is_nil(self) -> bool {
        self.0 == 0
    }

    /// The pseudo-thread that sends the IPC for interrupt line `irq`.
    pub const fn irq(irq: u32) -> ThreadId {
        ThreadId::new(irq, IRQ_VERSION)
    }

    /// The interrupt line, if this is an interrupt pseudo-thread.
    pub const fn as_irq(self) -> Option<u32> {
        if self.version() == IRQ_VERSION && self.0 != u64::MAX {
            Some(self.index())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_special_ids() {
        let t = ThreadId::new(7, 3);
        assert_eq!((t.index(), t.version()), (7, 3));
        assert!(ThreadId::NIL.is_nil() && !t.is_nil());
        assert_eq!(ThreadId::irq(4).as_irq(), Some(4));
        assert_eq!(t.as_irq(), None);
        assert_eq!(ThreadId::ANY.as_irq(), None);
    }
}
