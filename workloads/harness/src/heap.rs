//! The task's heap (the size its description declares), handed out once,
//! front to back: the harness takes the job records first, the workload
//! the rest. Nothing is freed during a run.

use crate::Error;

/// A bump allocator over one region of the task's memory.
#[derive(Debug)]
pub struct Heap {
    next: usize,
    end: usize,
}

impl Heap {
    /// The region `base..base + size`.
    ///
    /// # Safety
    /// The region must be mapped, writable, owned by nothing else, and stay
    /// so for the rest of the program (the task's declared heap is).
    pub unsafe fn new(base: usize, size: usize) -> Heap {
        Heap { next: base, end: base.saturating_add(size) }
    }

    /// Bytes left.
    pub fn left(&self) -> usize {
        self.end - self.next
    }

    /// Every byte left, from the next `align`-aligned address, zeroed.
    pub fn take_rest(&mut self, align: usize) -> &'static mut [u8] {
        let align = align.max(1).next_power_of_two();
        let start = self.next.checked_add(align - 1).map_or(self.end, |a| (a & !(align - 1)).min(self.end));
        self.next = start;
        let n = self.left();
        self.take(n, 0u8, 1).unwrap_or_default()
    }

    /// `n` values, each set to `value`, aligned for `T` (and to at least
    /// `align` bytes).
    pub fn take<T: Copy>(&mut self, n: usize, value: T, align: usize) -> Result<&'static mut [T], Error> {
        let align = align.max(core::mem::align_of::<T>()).next_power_of_two();
        let start = self.next.checked_add(align - 1).map(|a| a & !(align - 1));
        let bytes = n.checked_mul(core::mem::size_of::<T>());
        let (Some(start), Some(bytes)) = (start, bytes) else {
            return Err(Error::Heap { need: usize::MAX, left: self.left() });
        };
        if start > self.end || self.end - start < bytes {
            return Err(Error::Heap { need: bytes, left: self.left() });
        }
        self.next = start + bytes;
        let p = start as *mut T;
        for i in 0..n {
            // SAFETY: `start..start + bytes` lies inside the region the
            // caller of `new` vouched for, aligned for T, and no earlier
            // `take` handed out any of it.
            unsafe { p.add(i).write(value) };
        }
        // SAFETY: as above; every element is initialised.
        Ok(unsafe { core::slice::from_raw_parts_mut(p, n) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_aligned_slices_until_the_region_ends() {
        let region: &'static mut [u64] = Box::leak(vec![0u64; 64].into_boxed_slice());
        let base = region.as_mut_ptr() as usize;
        // SAFETY: a leaked buffer nobody else uses.
        let mut h = unsafe { Heap::new(base + 1, 511) };
        let a = h.take(3, 7u32, 1).unwrap();
        assert_eq!(a, &[7, 7, 7]);
        assert_eq!(a.as_ptr() as usize % 4, 0);
        let b = h.take(2, 1u8, 64).unwrap();
        assert_eq!(b.as_ptr() as usize % 64, 0);
        assert!(matches!(h.take(1000, 0u64, 8), Err(Error::Heap { need: 8000, .. })));
        let rest = h.left();
        assert!(h.take(rest + 1, 0u8, 1).is_err());
        let all = h.take_rest(64);
        assert_eq!(all.as_ptr() as usize % 64, 0);
        assert!(all.len() <= rest && all.len() + 64 > rest);
        assert_eq!(h.left(), 0);
        assert!(h.take_rest(64).is_empty());
        assert!(h.take(usize::MAX, 0u64, 8).is_err());
    }
}
