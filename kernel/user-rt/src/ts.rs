//! Safe wrappers of the TS pager's services (`abi::ipc::ts`) for the tasks
//! it pages: heap break and anonymous mappings, spawn and wait, pipes. A
//! task reaches its pager through its description ([`crate::info`]).
//!
//! Every call blocks until the pager answers; [`read`] of an empty pipe,
//! [`write`] to a full one and [`wait`] for a living child wait until they
//! can complete.

use abi::ipc::root::name_words;
use abi::ipc::ts as proto;
pub use abi::ipc::ts::{Ended, Error, IO_MAX, MAX_FDS};
use abi::ipc::{Tag, MAX_MRS};
use abi::syscall::{call, Msg};
use abi::ThreadId;

/// A pipe end, as the pager numbers it for this task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fd(pub u64);

fn pager() -> ThreadId {
    crate::info().map_or(ThreadId::NIL, |i| i.pager)
}

/// One request; the reply's words land in `out`.
fn ask(label: u64, words: &[u64], out: &mut [u64; MAX_MRS - 1]) -> Result<usize, Error> {
    let m = call(pager(), &Msg::long(Tag::new(label, words.len(), 0), words)).map_err(|_| Error::Refused)?;
    let n = m.words(out);
    match m.tag().label() {
        0 => Ok(n),
        l => Err(Error::from_label(l).unwrap_or(Error::Refused)),
    }
}

fn ask1(label: u64, words: &[u64]) -> Result<u64, Error> {
    let mut out = [0; MAX_MRS - 1];
    ask(label, words, &mut out).map(|_| out[0])
}

/// Sets the heap break to `to`; returns it.
pub fn brk(to: u64) -> Result<u64, Error> {
    if to == 0 {
        return Err(Error::Invalid);
    }
    ask1(proto::BRK, &[to])
}

/// Moves the break by `delta` bytes; returns the old break (the start of
/// new memory when it grows), as `sbrk` does.
pub fn sbrk(delta: i64) -> Result<u64, Error> {
    let old = ask1(proto::BRK, &[0])?;
    if delta != 0 {
        brk(old.checked_add_signed(delta).ok_or(Error::Invalid)?)?;
    }
    Ok(old)
}

/// `len` bytes of fresh zeroed memory; returns its address.
pub fn map(len: u64) -> Result<u64, Error> {
    ask1(proto::MAP, &[len])
}

/// Gives back `[addr, addr + len)` of memory from [`map`].
pub fn unmap(addr: u64, len: u64) -> Result<(), Error> {
    ask1(proto::UNMAP, &[addr, len]).map(|_| ())
}

/// Starts boot module `module` as a child with argument string `args`,
/// at this task's priority; it gets `fds` under the same numbers.
pub fn spawn(module: &str, args: &str, fds: &[Fd]) -> Result<ThreadId, Error> {
    let mask = fds.iter().filter(|f| (f.0 as usize) < MAX_FDS).fold(0u64, |m, f| m | 1 << f.0);
    let prio = crate::info().map_or(0, |i| i.priority);
    let mut w = [0u64; 6 + proto::ARGS_WORDS];
    w[..4].copy_from_slice(&name_words(module));
    (w[4], w[5]) = (mask, prio);
    w[6..].copy_from_slice(&proto::args_words(args));
    ask1(proto::SPAWN, &w).map(ThreadId)
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub child: ThreadId,
    pub how: Ended,
    /// The exit status (for [`Ended::Crashed`] the exception vector).
    pub status: u64,
}

fn waited(out: &[u64]) -> Option<Exit> {
    (out[0] != 0).then(|| Exit {
        child: ThreadId(out[0]),
        how: Ended::from_word(out[1]).unwrap_or(Ended::Crashed),
        status: out[2],
    })
}

/// Waits for the end of `child` (`None`: any child).
pub fn wait(child: Option<ThreadId>) -> Result<Exit, Error> {
    let mut out = [0; MAX_MRS - 1];
    ask(proto::WAIT, &[child.map_or(0, |c| c.0), 0], &mut out)?;
    waited(&out).ok_or(Error::NoChild)
}

/// Like [`wait`], but `None` at once when no matching child has ended.
pub fn try_wait(child: Option<ThreadId>) -> Result<Option<Exit>, Error> {
    let mut out = [0; MAX_MRS - 1];
    ask(proto::WAIT, &[child.map_or(0, |c| c.0), proto::NOHANG], &mut out)?;
    Ok(waited(&out))
}

/// A new pipe: (read end, write end).
pub fn pipe() -> Result<(Fd, Fd), Error> {
    let mut out = [0; MAX_MRS - 1];
    ask(proto::PIPE, &[], &mut out)?;
    Ok((Fd(out[0]), Fd(out[1])))
}

/// Reads up to `buf.len()` bytes (at most [`IO_MAX`] per call); 0 is end
/// of file.
pub fn read(fd: Fd, buf: &mut [u8]) -> Result<usize, Error> {
    let max = buf.len().min(IO_MAX);
    if max == 0 {
        return Ok(0);
    }
    let mut out = [0; MAX_MRS - 1];
    ask(proto::READ, &[fd.0, max as u64], &mut out)?;
    let n = (out[0] as usize).min(max);
    proto::words_to_bytes(&out[1..1 + n.div_ceil(8)], &mut buf[..n]);
    Ok(n)
}

/// Writes some of `buf` (at most [`IO_MAX`] bytes per call); returns how
/// many the pipe took.
pub fn write(fd: Fd, buf: &[u8]) -> Result<usize, Error> {
    let n = buf.len().min(IO_MAX);
    if n == 0 {
        return Ok(0);
    }
    let mut w = [0u64; 2 + proto::IO_WORDS];
    (w[0], w[1]) = (fd.0, n as u64);
    let words = proto::bytes_to_words(&buf[..n], &mut w[2..]);
    ask1(proto::WRITE, &w[..2 + words]).map(|k| k as usize)
}

/// Writes all of `buf`.
pub fn write_all(fd: Fd, mut buf: &[u8]) -> Result<(), Error> {
    while !buf.is_empty() {
        let n = write(fd, buf)?;
        buf = &buf[n.min(buf.len())..];
    }
    Ok(())
}

pub fn close(fd: Fd) -> Result<(), Error> {
    ask1(proto::CLOSE, &[fd.0]).map(|_| ())
}

/// The pager's counters for this task (its own faults and frames).
pub fn stats() -> Result<abi::ipc::pager::Stats, abi::Error> {
    crate::pager_stats(pager(), abi::syscall::myself().0)
}
