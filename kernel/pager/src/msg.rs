//! Messages longer than the six registers, page-fault requests and
//! replies, and the receive loop every pager runs.

use crate::table::{fpage_rights, Rights};
use abi::ipc::{label, map_item, Fpage, Tag, MAX_MRS};
use abi::layout;
use abi::syscall::{reply_wait, send, utcb, Msg};
use abi::{Error, ThreadId, Timeout};

/// A message of up to 63 words (label, untyped words, then typed words).
/// Words past MR6 travel through the UTCB: [`Words::msg`] puts them
/// there, so call it right before the send.
#[derive(Clone, Copy)]
pub struct Words {
    pub label: u64,
    untyped: usize,
    typed: usize,
    w: [u64; MAX_MRS - 1],
}

impl Words {
    pub const fn new(label: u64) -> Words {
        Words { label, untyped: 0, typed: 0, w: [0; MAX_MRS - 1] }
    }

    /// A reply with label 0 and `words`.
    pub fn ok(words: &[u64]) -> Words {
        let mut m = Words::new(0);
        for &x in words {
            m.push(x);
        }
        m
    }

    /// Appends an untyped word (silently dropped past 63 words).
    pub fn push(&mut self, x: u64) {
        if self.untyped + self.typed < self.w.len() {
            self.w[self.untyped] = x;
            self.untyped += 1;
        }
    }

    /// The untyped words, for filling in place (`n` of them).
    pub fn words_mut(&mut self, n: usize) -> &mut [u64] {
        self.untyped = n.min(self.w.len() - self.typed);
        &mut self.w[..self.untyped]
    }

    /// Appends a map item (two typed words).
    pub fn map(&mut self, item: [u64; 2]) {
        let at = self.untyped + self.typed;
        if at + 2 <= self.w.len() {
            self.w[at..at + 2].copy_from_slice(&item);
            self.typed += 2;
        }
    }

    /// As a message to send now (words past MR6 copied into the UTCB).
    pub fn msg(&self) -> Msg {
        Msg::long(Tag::new(self.label, self.untyped, self.typed), &self.w[..self.untyped + self.typed])
    }

    /// Sends it to `to`, who waits for it (a reply held back until it could
    /// be given): never blocks.
    pub fn send_now(&self, to: ThreadId) -> Result<(), Error> {
        send(to, &self.msg(), Timeout::ZERO)
    }
}

/// A page fault the kernel reported for a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub addr: u64,
    pub ip: u64,
    pub write: bool,
    pub exec: bool,
}

impl Fault {
    pub fn of(m: &Msg) -> Option<Fault> {
        (m.tag().label() == label::PAGE_FAULT).then(|| Fault {
            addr: m.mr[0],
            ip: m.mr[1],
            write: m.mr[2] & 2 != 0,
            exec: m.mr[2] & 1 != 0,
        })
    }

    pub fn page(&self) -> u64 {
        self.addr & !0xfff
    }

    /// Whether a page with rights `r` allows the access that faulted.
    pub fn allowed_by(&self, r: Rights) -> bool {
        (!self.write || r.write) && (!self.exec || r.exec)
    }

    /// What the access was, for reports.
    pub fn access(&self) -> &'static str {
        match (self.write, self.exec) {
            (true, _) => "write",
            (_, true) => "execute",
            _ => "read",
        }
    }
}

/// The answer to a fault at `vaddr`: frame `frame` (mapped in the pager's
/// phys window) with rights `r`.
pub fn map_reply(vaddr: u64, frame: u64, r: Rights) -> Words {
    let mut w = Words::new(0);
    w.map(map_item(vaddr & !0xfff, Fpage::new(layout::phys(frame), 12, fpage_rights(r)), false));
    w
}

/// The answer to a fault the pager will not resolve: no mapping, so the
/// kernel raises the page fault to the client's exception handler.
pub fn refusal() -> Words {
    Words::new(abi::ipc::pager::REFUSED)
}

/// Receives and answers messages forever: `handle(from, msg)` returns the
/// reply, or `None` for none (yet). Nobody may map into the pager
/// uninvited, so its receive window is closed while it waits.
pub fn serve(mut handle: impl FnMut(ThreadId, &Msg) -> Option<Words>) -> ! {
    let mut reply_to = ThreadId::NIL;
    let mut reply = Words::new(0);
    loop {
        utcb().br[0] = 0;
        let out = if reply_to.is_nil() { Msg::default() } else { reply.msg() };
        match reply_wait(reply_to, &out) {
            Ok((from, m)) => match handle(from, &m) {
                Some(r) => (reply_to, reply) = (from, r),
                None => reply_to = ThreadId::NIL,
            },
            Err(_) => reply_to = ThreadId::NIL,
        }
    }
}
