//! A pager's own free list: frames it took back from a client (a heap that
//! shrank, a task that ended) and keeps for the next client instead of
//! returning them to sigma0. A stack, so the frame freed last (still warm
//! in no one's cache but the pager's partition) is handed out first.

/// The list is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

pub struct FreeList<const N: usize> {
    frames: [u64; N],
    len: usize,
}

impl<const N: usize> Default for FreeList<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FreeList<N> {
    pub const fn new() -> Self {
        FreeList { frames: [0; N], len: 0 }
    }

    pub fn push(&mut self, frame: u64) -> Result<(), Full> {
        let slot = self.frames.get_mut(self.len).ok_or(Full)?;
        *slot = frame;
        self.len += 1;
        Ok(())
    }

    pub fn pop(&mut self) -> Option<u64> {
        self.len = self.len.checked_sub(1)?;
        Some(self.frames[self.len])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_in_first_out_and_bounded() {
        let mut f = FreeList::<3>::new();
        assert_eq!(f.pop(), None);
        for x in [0x1000, 0x2000, 0x3000] {
            f.push(x).unwrap();
        }
        assert_eq!(f.push(0x4000), Err(Full));
        assert_eq!(f.len(), 3);
        assert_eq!((f.pop(), f.pop(), f.pop(), f.pop()), (Some(0x3000), Some(0x2000), Some(0x1000), None));
        assert!(f.is_empty());
    }
}
