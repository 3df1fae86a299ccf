//! The kernel's index and address types: thread slots, space indices,
//! the links between slots, and physical and virtual addresses. Every one
//! is a `#[repr(transparent)]` wrapper of the integer it replaces, so it
//! costs nothing at run time; what it buys is that a slot cannot be passed
//! where a space index is wanted, nor a physical address where a virtual
//! one is, and that a value is range-checked once, where it is made.
//!
//! - [`Slot`]: a TCB slot, always `< MAX_THREADS` (made by [`Slot::new`],
//!   which checks it, so indexing a [`PerSlot`] table with one never
//!   fails).
//! - [`SpaceIdx`]: an address-space slot, always `< MAX_SPACES`.
//! - [`Link`], [`SpaceLink`]: a slot (space index) or none, in two bytes:
//!   the sender-queue links, the ready queues' heads and the "which space
//!   is loaded" marks. `Option<Slot>` would take four bytes (a `u16` has
//!   no spare niche for `None`): the three links in every TCB stay at
//!   their old size, and testing one is the same compare against
//!   `u16::MAX` as before, now written once, here. (The ready queues'
//!   rings are plain `Slot`s: they are read only for a queued slot.)
//! - [`PhysAddr`], [`VirtAddr`]: addresses. The kernel's own, not the
//!   `x86_64` crate's types of the same names: those panic on a bad value
//!   in `new` and in their `+`/`-` operators, and a value a user chose must
//!   never panic the kernel. Here the constructors that check return
//!   `Option`, and arithmetic is checked. `arch::paging` converts to the
//!   crate's types where its page-table mapper needs them.
#![deny(clippy::arithmetic_side_effects)]

/// TCB slots (slot 0 is never a thread: `ThreadId` index 0 is nil).
pub const MAX_THREADS: usize = 128;
/// Address-space slots.
pub const MAX_SPACES: usize = 32;
/// The size of a page and of a frame.
pub const PAGE_SIZE: u64 = 4096;

// Both fit a `u16` below the `Link` sentinel.
const _: () = assert!(MAX_THREADS < u16::MAX as usize);
const _: () = assert!(MAX_SPACES < u16::MAX as usize);

// The two index types: a private `u16` below a bound, made only by the
// constructors here (`new` checks; `ZERO` and `all` are in range by
// construction), so `index` may tell the optimiser the bound.
macro_rules! index {
    ($(#[$doc:meta])* $idx:ident, $max:ident, $set:ty) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $idx(u16);

        impl $idx {
            /// Index 0: the filler of tables whose entries mean something
            /// only while set.
            pub const ZERO: $idx = $idx(0);

            /// Index `i`, if there is one.
            #[inline(always)]
            pub const fn new(i: usize) -> Option<$idx> {
                if i < $max {
                    Some($idx(i as u16))
                } else {
                    None
                }
            }

            /// The index into a table of that many entries (always in
            /// range: indexing a table with it needs no bounds check, and
            /// has none).
            #[inline(always)]
            pub const fn index(self) -> usize {
                // SAFETY: the field is private to this module, where every
                // value is made by `new` (which checks), `ZERO` or `all` (in
                // range by construction), or read back from a link made
                // from one (`to`; `get` never returns the sentinel).
                unsafe { core::hint::assert_unchecked((self.0 as usize) < $max) };
                self.0 as usize
            }

            /// The index's bit in a set of them.
            #[inline(always)]
            pub const fn bit(self) -> $set {
                const _: () = assert!($max <= <$set>::BITS as usize, "the set has a bit for each");
                1 << self.0
            }

            /// Every index, in order.
            pub fn all() -> impl Iterator<Item = $idx> {
                (0..$max as u16).map($idx)
            }
        }

        impl core::fmt::Display for $idx {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}
index!(
    /// A thread slot: the index of a TCB, `< MAX_THREADS` (slot 0 is never
    /// a thread's).
    Slot,
    MAX_THREADS,
    u128
);
index!(
    /// An address-space slot, `< MAX_SPACES`.
    SpaceIdx,
    MAX_SPACES,
    u32
);

impl Slot {
    /// Every slot that can hold a thread (all but slot 0), in order.
    pub fn threads() -> impl Iterator<Item = Slot> {
        (1..MAX_THREADS as u16).map(Slot)
    }
}

impl SpaceIdx {
    /// The space's number, for the mapping database (which keys its
    /// nodes by `mapdb::SpaceId`, a plain `u16`).
    #[inline(always)]
    pub const fn number(self) -> u16 {
        self.0
    }

    /// The PCID of the space's page tables (0 is the kernel's own).
    #[inline(always)]
    pub const fn pcid(self) -> u16 {
        const _: () = assert!(MAX_SPACES < 4096, "PCIDs have 12 bits");
        // Below 4096 (asserted): never saturates.
        self.0.saturating_add(1)
    }
}

// The two link types, one per index type (no trait or generic
// constructor through which a value out of range could become a `Slot` or
// `SpaceIdx`).
macro_rules! link {
    ($(#[$doc:meta])* $link:ident, $idx:ident) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub struct $link(u16);

        impl $link {
            /// None.
            pub const NONE: $link = $link(u16::MAX);

            /// A link to `t`.
            #[inline(always)]
            pub const fn to(t: $idx) -> $link {
                $link(t.0)
            }

            /// What the link names, if anything.
            #[inline(always)]
            pub const fn get(self) -> Option<$idx> {
                if self.0 == u16::MAX {
                    None
                } else {
                    Some($idx(self.0))
                }
            }

            #[inline(always)]
            pub const fn is_none(self) -> bool {
                self.0 == u16::MAX
            }

            #[inline(always)]
            pub const fn is_some(self) -> bool {
                !self.is_none()
            }

            /// Does the link name `t`?
            #[inline(always)]
            pub const fn is(self, t: $idx) -> bool {
                self.0 == t.0
            }
        }

        impl core::fmt::Debug for $link {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                self.get().fmt(f)
            }
        }
    };
}
link!(
    /// A [`Slot`] or none ([`Link::NONE`]), in two bytes: a queue or list
    /// link.
    Link,
    Slot
);
link!(
    /// A [`SpaceIdx`] or none ([`SpaceLink::NONE`]), in two bytes.
    SpaceLink,
    SpaceIdx
);

/// A table with one `T` per thread slot, indexed by [`Slot`].
#[repr(transparent)]
pub struct PerSlot<T>(pub [T; MAX_THREADS]);

/// A table with one `T` per space slot, indexed by [`SpaceIdx`].
#[repr(transparent)]
pub struct PerSpace<T>(pub [T; MAX_SPACES]);

macro_rules! table {
    ($table:ident, $idx:ident) => {
        impl<T> $table<T> {
            pub fn iter(&self) -> core::slice::Iter<'_, T> {
                self.0.iter()
            }
            pub fn iter_mut(&mut self) -> core::slice::IterMut<'_, T> {
                self.0.iter_mut()
            }
        }
        impl<T> core::ops::Index<$idx> for $table<T> {
            type Output = T;
            #[inline(always)]
            fn index(&self, i: $idx) -> &T {
                &self.0[i.index()]
            }
        }
        impl<T> core::ops::IndexMut<$idx> for $table<T> {
            #[inline(always)]
            fn index_mut(&mut self, i: $idx) -> &mut T {
                &mut self.0[i.index()]
            }
        }
    };
}
table!(PerSlot, Slot);
table!(PerSpace, SpaceIdx);

/// A physical address.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysAddr(u64);

impl PhysAddr {
    /// Physical addresses have at most 52 bits on x86_64.
    pub const LIMIT: u64 = 1 << 52;

    /// `a`, if it is a possible physical address (below 2^52).
    #[inline(always)]
    pub const fn new(a: u64) -> Option<PhysAddr> {
        if a < Self::LIMIT {
            Some(PhysAddr(a))
        } else {
            None
        }
    }

    /// An address the kernel itself computed (from the pool, a page-table
    /// entry, the boot loader's memory map): not checked.
    #[inline(always)]
    pub const fn from_kernel(a: u64) -> PhysAddr {
        PhysAddr(a)
    }

    #[inline(always)]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    #[inline(always)]
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }

    /// `self + off`, if that does not leave the physical address space.
    #[inline(always)]
    pub const fn checked_add(self, off: u64) -> Option<PhysAddr> {
        match self.0.checked_add(off) {
            Some(a) => PhysAddr::new(a),
            None => None,
        }
    }
}

/// A virtual address, canonical (bits 63..47 all equal).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtAddr(u64);

impl VirtAddr {
    /// A user address: canonical and below `abi::USER_END`.
    #[inline(always)]
    pub const fn user(a: u64) -> Option<VirtAddr> {
        if a < abi::USER_END {
            Some(VirtAddr(a))
        } else {
            None
        }
    }

    /// An address the kernel itself computed (a symbol, the direct map).
    #[inline(always)]
    pub const fn from_kernel(a: u64) -> VirtAddr {
        VirtAddr(a)
    }

    #[inline(always)]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    #[inline(always)]
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }

    /// The address as a pointer (the kernel's own memory: the direct map,
    /// its image, a device page).
    #[inline(always)]
    pub const fn as_mut_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_spaces_are_range_checked() {
        assert_eq!(Slot::new(0).map(Slot::index), Some(0));
        assert_eq!(Slot::new(MAX_THREADS - 1).map(Slot::index), Some(MAX_THREADS - 1));
        assert_eq!(Slot::new(MAX_THREADS), None);
        assert_eq!(Slot::new(usize::MAX), None);
        assert_eq!(SpaceIdx::new(MAX_SPACES - 1).map(SpaceIdx::index), Some(MAX_SPACES - 1));
        assert_eq!(SpaceIdx::new(MAX_SPACES), None);
        assert_eq!(Slot::threads().count(), MAX_THREADS - 1);
        assert_eq!(Slot::all().count(), MAX_THREADS);
        assert_eq!(Slot::threads().next(), Slot::new(1));
        assert_eq!(SpaceIdx::all().count(), MAX_SPACES);
        assert_eq!(Slot::new(127).unwrap().bit(), 1 << 127);
        assert_eq!(SpaceIdx::new(31).unwrap().bit(), 1 << 31);
    }

    #[test]
    fn links_are_two_bytes_and_round_trip() {
        assert_eq!(core::mem::size_of::<Link>(), 2);
        assert_eq!(core::mem::size_of::<Slot>(), 2);
        assert_eq!(core::mem::size_of::<Option<Slot>>(), 4);
        let s = Slot::new(5).unwrap();
        assert_eq!(Link::to(s).get(), Some(s));
        assert!(Link::to(s).is(s) && Link::to(s).is_some());
        assert_eq!(Link::NONE.get(), None);
        assert!(Link::NONE.is_none() && !Link::NONE.is(s));
        // The highest slot and space are not the sentinel.
        let top = Slot::new(MAX_THREADS - 1).unwrap();
        assert_eq!(Link::to(top).get(), Some(top));
        let sp = SpaceIdx::new(MAX_SPACES - 1).unwrap();
        assert_eq!(SpaceLink::to(sp).get(), Some(sp));
        assert_eq!(SpaceLink::NONE.get(), None);
    }

    #[test]
    fn tables_index_by_their_own_type() {
        let mut t = PerSlot([0u8; MAX_THREADS]);
        let s = Slot::new(7).unwrap();
        t[s] = 3;
        assert_eq!(t.0[7], 3);
        assert_eq!(t.iter().filter(|&&x| x == 3).count(), 1);
        let mut sp = PerSpace([0u8; MAX_SPACES]);
        sp[SpaceIdx::new(31).unwrap()] = 1;
        assert_eq!(sp.0[31], 1);
    }

    #[test]
    fn addresses_check_what_must_hold() {
        assert_eq!(PhysAddr::new((1 << 52) - 1).map(PhysAddr::as_u64), Some((1 << 52) - 1));
        assert_eq!(PhysAddr::new(1 << 52), None);
        assert_eq!(PhysAddr::from_kernel(0x1000).checked_add(u64::MAX), None);
        assert_eq!(PhysAddr::from_kernel((1 << 52) - 4096).checked_add(4096), None);
        assert!(PhysAddr::from_kernel(0x2000).is_page_aligned() && !PhysAddr::from_kernel(0x2001).is_page_aligned());

        assert!(VirtAddr::user(abi::USER_END).is_none());
        assert!(VirtAddr::user(abi::USER_END - 1).is_some());
        let v = VirtAddr::user(0x0000_7FFF_FFFF_F000).unwrap();
        assert!(v.is_page_aligned() && !VirtAddr::from_kernel(0x1234).is_page_aligned());
    }
}
