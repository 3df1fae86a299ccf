//! IPC access control: every address space's send allow list (the rules
//! are in `abi::sys::allow`), kept as a bit mask of space numbers, and the
//! refusals counted for it.
//!
//! A per-space list rather than capabilities: IPC names threads by global
//! ids, a system is described statically (the root task applies each
//! task's `allow` list before the task starts), and the check on the IPC
//! path is one mask test. The rule itself is hardware-free and tested on
//! the host; the kernel glue (`permits_send`, the control-call checks)
//! exists only in the bare-metal build.
#![deny(clippy::arithmetic_side_effects)]

use crate::types::SpaceIdx;

/// A space's send allow list and its refusal counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// No list: the space may send to every space.
    all: bool,
    /// The spaces it may send to (bit = space number).
    mask: u32,
    /// Sends its threads made that the list refused.
    pub refused_sends: u64,
    /// Control calls its threads made that were refused (`NoPermission`).
    pub refused_calls: u64,
}

/// Space numbers the mask holds.
pub const SPACES: usize = 32;

const _: () = assert!(crate::types::MAX_SPACES <= SPACES, "Access keeps spaces in a u32");

const fn bit(space: SpaceIdx) -> u32 {
    space.bit()
}

impl Access {
    /// No list (the kernel's own tasks, and what a space starts as).
    pub const UNRESTRICTED: Access = Access { all: true, mask: 0, refused_sends: 0, refused_calls: 0 };

    /// The list a new space gets when a thread of space `creator`, whose
    /// list is `of`, creates it: none if the creator has none, else the
    /// creator's space alone.
    pub const fn for_child(of: &Access, creator: SpaceIdx) -> Access {
        if of.all {
            Access::UNRESTRICTED
        } else {
            Access { all: false, mask: bit(creator), refused_sends: 0, refused_calls: 0 }
        }
    }

    /// Whether a thread of space `own` (with this list) may send to a
    /// thread of space `dest` by the list alone.
    pub const fn reaches(&self, own: SpaceIdx, dest: SpaceIdx) -> bool {
        self.all || own.index() == dest.index() || self.mask & bit(dest) != 0
    }

    pub const fn is_unrestricted(&self) -> bool {
        self.all
    }

    /// The listed spaces (bit = space number).
    pub const fn mask(&self) -> u32 {
        self.mask
    }

    /// Adds space `dest`.
    pub fn add(&mut self, dest: SpaceIdx) {
        self.mask |= bit(dest);
    }

    /// Removes space `dest`.
    pub fn remove(&mut self, dest: SpaceIdx) {
        self.mask &= !bit(dest);
    }

    /// The empty list: only the sends every list allows.
    pub fn clear(&mut self) {
        (self.all, self.mask) = (false, 0);
    }

    /// No list any more: every space.
    pub fn lift(&mut self) {
        (self.all, self.mask) = (true, 0);
    }
}

/// The send rule of `abi::sys::allow`: a thread of space `from` with list
/// `a` may send to a thread of space `to` that is its pager
/// (`to_is_pager`) or waits for a message from exactly this sender
/// (`to_waits_for_it`), or that its list reaches.
pub const fn may_send(a: &Access, from: SpaceIdx, to: SpaceIdx, to_is_pager: bool, to_waits_for_it: bool) -> bool {
    a.reaches(from, to) || to_is_pager || to_waits_for_it
}

#[cfg(target_os = "none")]
pub use glue::*;

#[cfg(target_os = "none")]
mod glue {
    use super::Access;
    use crate::thread::{Kernel, State};
    use crate::types::{Slot, SpaceIdx};
    use abi::sys::allow;
    use abi::{Error, ThreadId};

    fn of(kk: &Kernel, t: Slot) -> &Access {
        &kk.spaces[kk.tcbs[t].space].access
    }

    /// May thread `s` send to thread `d` (both live)? See `abi::sys::allow`.
    #[inline(always)]
    pub fn permits_send(kk: &Kernel, s: Slot, d: Slot) -> bool {
        let (from, to) = (kk.tcbs[s].space, kk.tcbs[d].space);
        let id = kk.id_of(d);
        let waits = kk.tcbs[d].state == State::RecvBlocked && kk.tcbs[d].recv_from == kk.id_of(s);
        super::may_send(of(kk, s), from, to, kk.tcbs[s].pager == id, waits)
    }

    /// A send of `s` was refused: count it for its space.
    pub fn refused_send(kk: &mut Kernel, s: Slot) {
        let sp = kk.tcbs[s].space;
        let a = &mut kk.spaces[sp].access;
        a.refused_sends = a.refused_sends.saturating_add(1);
    }

    /// A control call of `s` was refused: count it for its space.
    pub fn refused_call(kk: &mut Kernel, s: Slot) {
        let sp = kk.tcbs[s].space;
        let a = &mut kk.spaces[sp].access;
        a.refused_calls = a.refused_calls.saturating_add(1);
    }

    /// May `cur` name `target` as some thread's pager, exception handler or
    /// interrupt handler? Only a thread it may reach itself (by its list or
    /// as its own pager); `NIL` always, anything for a caller without a
    /// list.
    pub fn may_name(kk: &Kernel, cur: Slot, target: ThreadId) -> Result<(), Error> {
        if target.is_nil() || of(kk, cur).is_unrestricted() {
            return Ok(());
        }
        let t = kk.lookup(target)?;
        if of(kk, cur).reaches(kk.tcbs[cur].space, kk.tcbs[t].space) || kk.tcbs[cur].pager == target {
            Ok(())
        } else {
            Err(Error::NoPermission)
        }
    }

    /// A checked change of a space's list (`attr::ALLOW`).
    #[derive(Clone, Copy, Debug)]
    pub enum Change {
        Add(SpaceIdx),
        Remove(SpaceIdx),
        Clear,
        Lift,
    }

    /// Checks an `attr::ALLOW` request of `cur` (peer `v`, op `op`).
    pub fn decode(kk: &Kernel, cur: Slot, v: u64, op: u64) -> Result<Change, Error> {
        let peer = ThreadId(v);
        match (peer, op) {
            (ThreadId::NIL, allow::REMOVE) => Ok(Change::Clear),
            (ThreadId::ANY, allow::ADD) if of(kk, cur).is_unrestricted() => Ok(Change::Lift),
            (ThreadId::ANY, allow::ADD) => Err(Error::NoPermission),
            (_, allow::ADD) => {
                may_name(kk, cur, peer)?;
                Ok(Change::Add(kk.tcbs[kk.lookup(peer)?].space))
            }
            (_, allow::REMOVE) => Ok(Change::Remove(kk.tcbs[kk.lookup(peer)?].space)),
            _ => Err(Error::InvalidArgument),
        }
    }

    /// Applies a checked change to thread `t`'s space.
    pub fn apply(kk: &mut Kernel, t: Slot, c: Change) {
        let a = &mut kk.spaces[kk.tcbs[t].space].access;
        match c {
            Change::Add(s) => a.add(s),
            Change::Remove(s) => a.remove(s),
            Change::Clear => a.clear(),
            Change::Lift => a.lift(),
        }
    }

    /// Thread `creator` made thread `t` in a space of its own.
    pub fn created_space(kk: &mut Kernel, creator: Slot, t: Slot) {
        let a = Access::for_child(of(kk, creator), kk.tcbs[creator].space);
        kk.spaces[kk.tcbs[t].space].access = a;
    }

    /// Space `sp` goes away: no list names it any more, and its slot
    /// starts afresh.
    pub fn released_space(kk: &mut Kernel, sp: SpaceIdx) {
        for s in kk.spaces.iter_mut() {
            s.access.remove(sp);
        }
        kk.spaces[sp].access = Access::UNRESTRICTED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(i: usize) -> SpaceIdx {
        SpaceIdx::new(i).unwrap()
    }

    fn restricted(spaces: &[usize]) -> Access {
        let mut a = Access::UNRESTRICTED;
        a.clear();
        for &s in spaces {
            a.add(sp(s));
        }
        a
    }

    #[test]
    fn a_list_reaches_its_own_space_and_what_it_names() {
        let a = restricted(&[3, 7]);
        assert!(a.reaches(sp(1), sp(1)) && a.reaches(sp(1), sp(3)) && a.reaches(sp(1), sp(7)));
        assert!(!a.reaches(sp(1), sp(2)) && !a.reaches(sp(1), sp(31)));
        assert!(Access::UNRESTRICTED.reaches(sp(1), sp(2)));
        let mut b = a;
        b.remove(sp(3));
        assert!(!b.reaches(sp(1), sp(3)) && b.reaches(sp(1), sp(7)));
        b.lift();
        assert!(b.reaches(sp(1), sp(3)) && b.is_unrestricted());
    }

    #[test]
    fn pager_and_reply_are_always_allowed() {
        let a = restricted(&[]);
        assert!(!may_send(&a, sp(1), sp(2), false, false));
        assert!(may_send(&a, sp(1), sp(2), true, false));
        assert!(may_send(&a, sp(1), sp(2), false, true));
        assert!(may_send(&a, sp(2), sp(2), false, false));
    }

    #[test]
    fn a_child_gets_its_creator_alone_or_no_list() {
        let parent = restricted(&[4, 5]);
        let child = Access::for_child(&parent, sp(9));
        assert!(child.reaches(sp(10), sp(9)) && !child.reaches(sp(10), sp(4)) && !child.is_unrestricted());
        assert_eq!(Access::for_child(&Access::UNRESTRICTED, sp(9)), Access::UNRESTRICTED);
    }

    #[test]
    fn every_space_has_its_own_bit_and_none_lies_outside_the_mask() {
        // A space index past the mask cannot be made (`SpaceIdx::new`).
        assert!(SpaceIdx::new(SPACES).is_none() && SpaceIdx::new(40).is_none());
        let top = crate::types::MAX_SPACES - 1;
        let mut a = restricted(&[]);
        a.add(sp(top));
        assert_eq!(a.mask(), 1 << top);
        assert!(a.reaches(sp(0), sp(top)) && !a.reaches(sp(0), sp(top - 1)));
    }
}
