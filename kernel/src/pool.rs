//! The kernel memory pool: a fixed set of frames, given at boot, from which
//! every kernel object (page tables, TCBs, kernel stacks) comes.
//!
//! Exhaustion is an error returned to whoever asked, never a panic. A
//! bitmap keeps the state so that a double free is detected, not absorbed.

use crate::types::PhysAddr;

const PAGE: u64 = abi::PAGE_SIZE;
/// Largest pool the bitmap can describe (in frames): 1 GiB.
pub const MAX_FRAMES: usize = 64 * 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    Exhausted,
    /// The frame is not in the pool or is already free.
    BadFree(PhysAddr),
}

pub struct FramePool {
    base: u64,
    frames: usize,
    used: usize,
    hint: usize,
    bitmap: [u64; MAX_FRAMES / 64],
}

impl FramePool {
    pub const fn empty() -> Self {
        FramePool { base: 0, frames: 0, used: 0, hint: 0, bitmap: [0; MAX_FRAMES / 64] }
    }

    /// Makes `[base, base + size)` the pool (page aligned, truncated to
    /// [`MAX_FRAMES`]).
    pub fn init(&mut self, base: PhysAddr, size: u64) {
        *self = FramePool::empty();
        self.base = base.as_u64().next_multiple_of(PAGE);
        self.frames = ((size / PAGE) as usize).min(MAX_FRAMES);
    }

    /// Physical address of a free frame, now taken.
    pub fn alloc(&mut self) -> Result<PhysAddr, PoolError> {
        let words = self.frames.div_ceil(64);
        for k in 0..words {
            let w = (self.hint + k) % words;
            let free = !self.bitmap[w];
            if free == 0 {
                continue;
            }
            let bit = free.trailing_zeros() as usize;
            let idx = w * 64 + bit;
            if idx >= self.frames {
                continue;
            }
            self.bitmap[w] |= 1 << bit;
            self.used += 1;
            self.hint = w;
            return Ok(PhysAddr::from_kernel(self.base + idx as u64 * PAGE));
        }
        Err(PoolError::Exhausted)
    }

    /// `n` physically contiguous free frames (first-fit); the first address.
    pub fn alloc_contiguous(&mut self, n: usize) -> Result<PhysAddr, PoolError> {
        if n == 0 {
            return Err(PoolError::Exhausted);
        }
        let mut run = 0;
        for idx in 0..self.frames {
            if self.bitmap[idx / 64] & (1 << (idx % 64)) == 0 {
                run += 1;
                if run == n {
                    let first = idx + 1 - n;
                    for j in first..=idx {
                        self.bitmap[j / 64] |= 1 << (j % 64);
                    }
                    self.used += n;
                    return Ok(PhysAddr::from_kernel(self.base + first as u64 * PAGE));
                }
            } else {
                run = 0;
            }
        }
        Err(PoolError::Exhausted)
    }

    pub fn free(&mut self, addr: PhysAddr) -> Result<(), PoolError> {
        let frame = addr.as_u64();
        let off = frame.wrapping_sub(self.base);
        let idx = (off / PAGE) as usize;
        if frame < self.base
            || !off.is_multiple_of(PAGE)
            || idx >= self.frames
            || self.bitmap[idx / 64] & (1 << (idx % 64)) == 0
        {
            return Err(PoolError::BadFree(addr));
        }
        self.bitmap[idx / 64] &= !(1 << (idx % 64));
        self.used -= 1;
        Ok(())
    }

    pub fn contains(&self, frame: PhysAddr) -> bool {
        let frame = frame.as_u64();
        frame >= self.base && frame < self.base + self.frames as u64 * PAGE
    }

    pub fn free_frames(&self) -> usize {
        self.frames - self.used
    }

    pub fn total_frames(&self) -> usize {
        self.frames
    }

    /// The accounting agrees with the bitmap: `used` is the number of taken
    /// frames, and no bit beyond the pool is set.
    pub fn check(&self) -> Result<(), &'static str> {
        let taken: usize = self.bitmap.iter().map(|w| w.count_ones() as usize).sum();
        let (full, rem) = (self.frames / 64, self.frames % 64);
        let beyond = (rem != 0 && self.bitmap[full] >> rem != 0)
            || self.bitmap[self.frames.div_ceil(64)..].iter().any(|&w| w != 0);
        if beyond {
            Err("a frame beyond the pool is marked taken")
        } else if taken != self.used {
            Err("the count of used frames differs from the bitmap")
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn exhaustion_is_an_error_and_double_free_is_caught() {
        let mut p = Box::new(FramePool::empty());
        p.init(PhysAddr::from_kernel(0x20_0000), 3 * PAGE);
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        let c = p.alloc().unwrap();
        assert_eq!(p.alloc(), Err(PoolError::Exhausted));
        p.free(b).unwrap();
        assert_eq!(p.free(b), Err(PoolError::BadFree(b)));
        let (low, odd) = (PhysAddr::from_kernel(0x1000), a.checked_add(1).unwrap());
        assert_eq!(p.free(low), Err(PoolError::BadFree(low)));
        assert_eq!(p.free(odd), Err(PoolError::BadFree(odd)));
        assert_eq!(p.alloc(), Ok(b));
        assert!([a, b, c].iter().all(|f| p.contains(*f)));
        assert_eq!(p.check(), Ok(()));
        p.used += 1;
        assert!(p.check().is_err());
    }

    #[test]
    fn contiguous_runs_skip_taken_frames() {
        let mut p = Box::new(FramePool::empty());
        p.init(PhysAddr::from_kernel(0x10_0000), 6 * PAGE);
        let a = p.alloc().unwrap();
        let _b = p.alloc().unwrap();
        p.free(a).unwrap();
        // Frame 0 is free but alone; the first run of 3 starts at frame 2.
        assert_eq!(p.alloc_contiguous(3), Ok(PhysAddr::from_kernel(0x10_0000 + 2 * PAGE)));
        assert_eq!(p.alloc_contiguous(2), Err(PoolError::Exhausted));
        assert_eq!(p.free_frames(), 2);
    }

    proptest! {
        #[test]
        fn never_hands_out_a_frame_twice(ops in prop::collection::vec(any::<(bool, u8)>(), 1..300)) {
            let mut p = Box::new(FramePool::empty());
            p.init(PhysAddr::from_kernel(0x100_0000), 100 * PAGE);
            let mut live: Vec<PhysAddr> = Vec::new();
            for (alloc, pick) in ops {
                if alloc || live.is_empty() {
                    match p.alloc() {
                        Ok(f) => {
                            prop_assert!(p.contains(f) && f.is_page_aligned());
                            prop_assert!(!live.contains(&f));
                            live.push(f);
                        }
                        Err(e) => prop_assert_eq!((e, live.len()), (PoolError::Exhausted, 100)),
                    }
                } else {
                    let f = live.swap_remove(pick as usize % live.len());
                    prop_assert!(p.free(f).is_ok());
                }
                prop_assert_eq!(p.free_frames(), 100 - live.len());
                prop_assert!(p.check().is_ok());
                prop_assert_eq!(live.iter().collect::<HashSet<_>>().len(), live.len());
            }
        }
    }
}
