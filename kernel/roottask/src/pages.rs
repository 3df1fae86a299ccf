//! The pages the root task backs for the tasks it pages itself (the
//! pagers and test tasks the description gives `pager = "root"`): which
//! frame is behind each virtual page of each such task, with its rights.
//!
//! The root task loads these tasks eagerly (image, stack and heap get their
//! frames before the task starts), so a page fault of theirs is only ever
//! answered from this table, never by allocating: the answer to a fault on
//! a page outside the table is a refusal.
//!
//! An open-addressing hash table with linear probing over a fixed array
//! (entries are never removed while the task lives).

/// Rights of a backed page (always readable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rights {
    pub write: bool,
    pub exec: bool,
}

impl Rights {
    /// As flexpage rights (`abi::ipc::rights`).
    pub fn fpage(self) -> u64 {
        use abi::ipc::rights;
        rights::READ | if self.write { rights::WRITE } else { 0 } | if self.exec { rights::EXEC } else { 0 }
    }
}

/// Entries the table holds (all root-paged tasks together).
pub const CAPACITY: usize = 8192;
const EMPTY: u64 = 0;

#[derive(Clone, Copy)]
struct Entry {
    /// `(task + 1) << 40 | virtual page number` (0: empty).
    key: u64,
    /// Frame address | 2 (write) | 1 (exec).
    val: u64,
}

pub struct Pages {
    entries: [Entry; CAPACITY],
    used: usize,
}

/// The table is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

fn key(task: usize, vaddr: u64) -> u64 {
    ((task as u64 + 1) << 40) | (vaddr >> 12)
}

fn slot(k: u64) -> usize {
    // Fibonacci hashing of the key.
    (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 51) as usize % CAPACITY
}

impl Pages {
    pub const fn new() -> Pages {
        Pages { entries: [Entry { key: EMPTY, val: 0 }; CAPACITY], used: 0 }
    }

    /// Records `frame` behind `vaddr` of `task` (replacing an earlier one).
    pub fn insert(&mut self, task: usize, vaddr: u64, frame: u64, r: Rights) -> Result<(), Full> {
        let k = key(task, vaddr);
        let val = (frame & !0xfff) | if r.write { 2 } else { 0 } | if r.exec { 1 } else { 0 };
        let mut i = slot(k);
        loop {
            let e = &mut self.entries[i];
            if e.key == k {
                e.val = val;
                return Ok(());
            }
            if e.key == EMPTY {
                // Keep one slot free so that lookups always end.
                if self.used + 1 >= CAPACITY {
                    return Err(Full);
                }
                *e = Entry { key: k, val };
                self.used += 1;
                return Ok(());
            }
            i = (i + 1) % CAPACITY;
        }
    }

    /// The frame and rights behind `vaddr` of `task`.
    pub fn lookup(&self, task: usize, vaddr: u64) -> Option<(u64, Rights)> {
        let k = key(task, vaddr);
        let mut i = slot(k);
        loop {
            let e = &self.entries[i];
            if e.key == k {
                return Some((e.val & !0xfff, Rights { write: e.val & 2 != 0, exec: e.val & 1 != 0 }));
            }
            if e.key == EMPTY {
                return None;
            }
            i = (i + 1) % CAPACITY;
        }
    }

    pub fn used(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn lookups_find_what_was_inserted_and_nothing_else() {
        let mut p = Box::new(Pages::new());
        let mut model = HashMap::new();
        let mut x = 12345u64;
        for n in 0..5000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (task, v) = ((x >> 60) as usize % 5, (x >> 20) & 0xffff_f000);
            let r = Rights { write: n % 2 == 0, exec: n % 3 == 0 };
            p.insert(task, v, n << 12, r).unwrap();
            model.insert((task, v), (n << 12, r));
        }
        for (&(t, v), &want) in &model {
            assert_eq!(p.lookup(t, v), Some(want));
        }
        assert_eq!(p.used(), model.len());
        assert_eq!(p.lookup(7, 0x1000), None);
    }

    #[test]
    fn a_full_table_says_so() {
        let mut p = Box::new(Pages::new());
        for i in 0..CAPACITY - 1 {
            p.insert(0, (i as u64) << 12, 0, Rights::default()).unwrap();
        }
        assert_eq!(p.insert(1, 0, 0, Rights::default()), Err(Full));
        assert!(p.lookup(1, 0).is_none(), "lookups end even when nearly full");
    }
}
