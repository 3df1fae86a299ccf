//! Pipes: bounded byte streams with a count of open read and write ends,
//! and the per-task descriptor tables that name those ends.
//!
//! A read takes what is there; of an empty pipe it blocks while a writer
//! is left and is end of file once none is. A write puts in what fits; of
//! a full pipe it blocks while a reader is left; without readers it fails
//! (broken pipe). Blocking is the caller's business: these functions only
//! say [`Read::Block`] / [`Write::Block`], and the pager answers the
//! request when a later change lets it complete.

use abi::ipc::ts::MAX_FDS;

/// Bytes a pipe buffers.
pub const CAPACITY: usize = 4096;
/// Pipes the pager holds at once.
pub const MAX_PIPES: usize = 16;

/// A ring buffer of [`CAPACITY`] bytes.
pub struct Ring {
    buf: [u8; CAPACITY],
    head: usize,
    len: usize,
}

impl Ring {
    pub const fn new() -> Ring {
        Ring { buf: [0; CAPACITY], head: 0, len: 0 }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn space(&self) -> usize {
        CAPACITY - self.len
    }

    /// Appends as much of `b` as fits; returns how much.
    pub fn put(&mut self, b: &[u8]) -> usize {
        let n = b.len().min(self.space());
        let tail = (self.head + self.len) % CAPACITY;
        let first = n.min(CAPACITY - tail);
        self.buf[tail..tail + first].copy_from_slice(&b[..first]);
        self.buf[..n - first].copy_from_slice(&b[first..n]);
        self.len += n;
        n
    }

    /// Takes up to `out.len()` bytes; returns how many.
    pub fn take(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        let first = n.min(CAPACITY - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        self.head = (self.head + n) % CAPACITY;
        self.len -= n;
        n
    }
}

impl Default for Ring {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// This many bytes were read.
    Data(usize),
    /// Empty, and no writer is left.
    Eof,
    /// Empty, but a writer may still write.
    Block,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// The pipe took this many bytes (at least one).
    Took(usize),
    /// No reader is left.
    Broken,
    /// Full, but a reader may still make room.
    Block,
}

pub struct Pipe {
    ring: Ring,
    readers: u32,
    writers: u32,
}

impl Pipe {
    fn read(&mut self, out: &mut [u8]) -> Read {
        if !self.ring.is_empty() && !out.is_empty() {
            Read::Data(self.ring.take(out))
        } else if self.writers == 0 {
            Read::Eof
        } else {
            Read::Block
        }
    }

    fn write(&mut self, b: &[u8]) -> Write {
        if self.readers == 0 {
            Write::Broken
        } else if self.ring.space() == 0 {
            Write::Block
        } else {
            Write::Took(self.ring.put(b))
        }
    }
}

/// One end of a pipe, as a descriptor names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    pub pipe: usize,
    pub write: bool,
}

/// Every pipe of the pager.
pub struct Pipes {
    slots: [Option<Pipe>; MAX_PIPES],
}

impl Default for Pipes {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipes {
    pub const fn new() -> Pipes {
        Pipes { slots: [const { None }; MAX_PIPES] }
    }

    /// A new pipe with one reader and one writer: (read end, write end).
    pub fn create(&mut self) -> Option<(End, End)> {
        let i = self.slots.iter().position(|s| s.is_none())?;
        self.slots[i] = Some(Pipe { ring: Ring::new(), readers: 1, writers: 1 });
        Some((End { pipe: i, write: false }, End { pipe: i, write: true }))
    }

    fn pipe(&mut self, e: End) -> Option<&mut Pipe> {
        self.slots.get_mut(e.pipe)?.as_mut()
    }

    /// One more holder of `e` (a child that inherits it).
    pub fn dup(&mut self, e: End) {
        if let Some(p) = self.pipe(e) {
            if e.write {
                p.writers += 1;
            } else {
                p.readers += 1;
            }
        }
    }

    /// One holder of `e` fewer; the pipe goes when no end is left.
    pub fn close(&mut self, e: End) {
        let Some(p) = self.pipe(e) else { return };
        let n = if e.write { &mut p.writers } else { &mut p.readers };
        *n = n.saturating_sub(1);
        if p.readers == 0 && p.writers == 0 {
            self.slots[e.pipe] = None;
        }
    }

    /// Reads through read end `e`.
    pub fn read(&mut self, e: End, out: &mut [u8]) -> Read {
        match self.pipe(e) {
            Some(p) if !e.write => p.read(out),
            _ => Read::Eof,
        }
    }

    /// Writes through write end `e`.
    pub fn write(&mut self, e: End, b: &[u8]) -> Write {
        match self.pipe(e) {
            Some(p) if e.write => p.write(b),
            _ => Write::Broken,
        }
    }

    /// Pipes in use.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

/// A task's descriptors: small numbers naming pipe ends.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fds {
    slots: [Option<End>; MAX_FDS],
}

impl Fds {
    /// The lowest free descriptor, now naming `e`.
    pub fn open(&mut self, e: End) -> Option<usize> {
        let fd = self.slots.iter().position(|s| s.is_none())?;
        self.slots[fd] = Some(e);
        Some(fd)
    }

    pub fn get(&self, fd: u64) -> Option<End> {
        *self.slots.get(usize::try_from(fd).ok()?)?
    }

    /// Forgets `fd`; returns the end it named.
    pub fn take(&mut self, fd: u64) -> Option<End> {
        self.slots.get_mut(usize::try_from(fd).ok()?)?.take()
    }

    /// Sets descriptor `fd` (a child's inherited one).
    pub fn set(&mut self, fd: usize, e: End) {
        if let Some(s) = self.slots.get_mut(fd) {
            *s = Some(e);
        }
    }

    /// Closes them all (at the task's end); returns the ends.
    pub fn drain(&mut self) -> impl Iterator<Item = End> + '_ {
        self.slots.iter_mut().filter_map(|s| s.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn read_blocks_until_data_then_eof_after_the_last_writer() {
        let mut p = Pipes::new();
        let (r, w) = p.create().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(p.read(r, &mut buf), Read::Block);
        p.dup(w);
        assert_eq!(p.write(w, b"abc"), Write::Took(3));
        p.close(w);
        assert_eq!(p.read(r, &mut buf), Read::Data(3));
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(p.read(r, &mut buf), Read::Block, "one writer is left");
        p.close(w);
        assert_eq!(p.read(r, &mut buf), Read::Eof);
        p.close(r);
        assert_eq!(p.open(), 0, "a pipe without ends goes");
    }

    #[test]
    fn write_blocks_when_full_and_breaks_without_readers() {
        let mut p = Pipes::new();
        let (r, w) = p.create().unwrap();
        let big = [7u8; CAPACITY + 100];
        assert_eq!(p.write(w, &big), Write::Took(CAPACITY));
        assert_eq!(p.write(w, b"x"), Write::Block);
        let mut out = [0u8; 100];
        assert_eq!(p.read(r, &mut out), Read::Data(100));
        assert_eq!(p.write(w, &big), Write::Took(100));
        p.close(r);
        assert_eq!(p.write(w, b"x"), Write::Broken);
    }

    #[test]
    fn wrong_ends_and_dead_pipes_are_not_usable() {
        let mut p = Pipes::new();
        let (r, w) = p.create().unwrap();
        assert_eq!(p.write(r, b"x"), Write::Broken);
        assert_eq!(p.read(w, &mut [0; 4]), Read::Eof);
        let stale = End { pipe: MAX_PIPES + 3, write: true };
        assert_eq!(p.write(stale, b"x"), Write::Broken);
        p.close(stale);
        for _ in 1..MAX_PIPES {
            p.create().unwrap();
        }
        assert!(p.create().is_none(), "the table is full");
    }

    #[test]
    fn descriptors_are_lowest_free_first() {
        let mut f = Fds::default();
        let e = |pipe| End { pipe, write: false };
        assert_eq!((f.open(e(0)), f.open(e(1)), f.open(e(2))), (Some(0), Some(1), Some(2)));
        assert_eq!(f.take(1), Some(e(1)));
        assert_eq!(f.open(e(5)), Some(1));
        assert_eq!(f.get(99), None);
        assert_eq!(f.take(u64::MAX), None);
        assert_eq!(f.drain().count(), 3);
        assert_eq!(f.drain().count(), 0);
    }

    proptest! {
        /// Whatever the sizes of writes and reads, the bytes come out in
        /// the order they went in, and never more than fit are buffered.
        #[test]
        fn the_ring_is_a_fifo(ops in proptest::collection::vec((any::<bool>(), 0usize..3000), 1..200)) {
            let mut ring = Ring::new();
            let mut model = std::collections::VecDeque::new();
            let mut next = 0u8;
            for (put, n) in ops {
                if put {
                    let b: Vec<u8> = (0..n).map(|i| next.wrapping_add(i as u8)).collect();
                    let took = ring.put(&b);
                    prop_assert_eq!(took, n.min(CAPACITY - model.len()));
                    model.extend(&b[..took]);
                    next = next.wrapping_add(took as u8);
                } else {
                    let mut out = vec![0u8; n];
                    let got = ring.take(&mut out);
                    prop_assert_eq!(got, n.min(model.len()));
                    let want: Vec<u8> = model.drain(..got).collect();
                    prop_assert_eq!(&out[..got], &want[..]);
                }
                prop_assert_eq!(ring.len(), model.len());
            }
        }
    }
}
