//! sigma0's protocol server: page faults of its clients and the requests of
//! `abi::ipc::sigma0`, answered one at a time, forever.
//!
//! Every frame it hands out goes through one decision, [`Server::grant`]:
//! the frame must be usable RAM sigma0 manages; a pager bound to a
//! partition gets only frames of that partition's colours; a frame already
//! handed out goes again only to its owner (a re-fault after a flush);
//! anything else is refused with a reason, counted in [`Stats`]. A refused
//! page fault is answered without a mapping, so the kernel turns it into an
//! exception IPC to the faulting thread's handler.
//!
//! Who may ask what: GET_FRAME and GET_ANY are for every client (the colour
//! rules apply to bound pagers); BIND, GET_MODULE, GET_PORTS and GET_ANY
//! for a named partition are for the root task only (the KIP names it).

use crate::frames::{self, Frames};
use crate::partitions::Partitions;
use abi::ipc::sigma0::{self as proto, Stats};
use abi::ipc::{label, map_item, rights, Fpage, Tag};
use abi::kip::{Kip, MemKind};
use abi::layout;
use abi::syscall::{reply_wait, Msg};
use abi::ThreadId;

pub struct Server {
    kip: &'static Kip,
    frames: Frames,
    parts: Option<Partitions>,
    /// Ports handed out (one bit per port).
    ports_out: [u64; 1024],
    stats: Stats,
}

/// Why a frame is not handed out (the reply label says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// Not RAM sigma0 manages, or a request it does not know.
    Unknown,
    /// Taken already (by another client, for a request).
    Taken,
    /// Another client's frame (for a page fault).
    NotOwner,
    /// Of a colour outside the caller's partition.
    Color,
    /// The caller may not make this request.
    NotAllowed,
}

impl Refusal {
    fn label(self) -> u64 {
        match self {
            Refusal::Unknown => proto::REFUSED_UNKNOWN,
            Refusal::Taken => proto::REFUSED_TAKEN,
            Refusal::NotOwner => proto::REFUSED_NOT_OWNER,
            Refusal::Color => proto::REFUSED_COLOR,
            Refusal::NotAllowed => proto::REFUSED_NOT_ALLOWED,
        }
    }
}

fn refused(r: Refusal) -> Msg {
    Msg::new(Tag::new(r.label(), 0, 0), &[])
}

/// A reply carrying frame `f` (its own page in sigma0's idempotent space)
/// to land at `dst` in the client's window, with MR1 = `f`.
fn frame_reply(dst: u64, f: u64, r: u64) -> Msg {
    let it = map_item(dst, Fpage::new(f, 12, r), false);
    Msg::new(Tag::new(0, 1, 2), &[f, it[0], it[1]])
}

impl Server {
    pub fn new(kip: &'static Kip, frames: Frames, parts: Option<Partitions>) -> Server {
        Server { kip, frames, parts, ports_out: [0; 1024], stats: Stats::default() }
    }

    fn is_root(&self, t: ThreadId) -> bool {
        self.kip.root_id != 0 && t.0 == self.kip.root_id
    }

    /// The partition `t` is bound to, if any.
    fn partition_of(&self, t: ThreadId) -> Option<usize> {
        self.parts.as_ref().and_then(|p| p.partition_of(t))
    }

    fn count(&mut self, r: Refusal) -> Refusal {
        match r {
            Refusal::NotOwner => self.stats.refused_owner += 1,
            Refusal::Color => self.stats.refused_color += 1,
            _ => self.stats.refused_other += 1,
        }
        r
    }

    /// The one decision: may `client` have frame `f` (a page fault when
    /// `fault`, else a GET_FRAME)? Takes it for the client if it is free.
    fn grant(&mut self, client: ThreadId, f: u64, fault: bool) -> Result<(), Refusal> {
        let owner = self.frames.owner(f).ok_or(Refusal::Unknown)?;
        if let (Some(p), Some(ps)) = (self.partition_of(client), self.parts.as_ref()) {
            if !ps.colors(p).contains(self.frames.color_of(f)) {
                return Err(Refusal::Color);
            }
        }
        match owner {
            o if o == client.0 && fault => Ok(()),
            frames::NOBODY => {
                if !self.frames.take(f, client.0) {
                    return Err(Refusal::Taken);
                }
                self.given(client);
                Ok(())
            }
            _ if fault => Err(Refusal::NotOwner),
            _ => Err(Refusal::Taken),
        }
    }

    fn given(&mut self, client: ThreadId) {
        self.stats.frames_given += 1;
        if let (Some(p), Some(ps)) = (self.partition_of(client), self.parts.as_mut()) {
            ps.record(p);
        }
    }

    /// Any free frame for `client`: of its partition's colours if it is a
    /// bound pager, of partition `asked` (root task only) or of any colour.
    fn any_frame(&mut self, client: ThreadId, asked: u64) -> Result<u64, Refusal> {
        let part = match (self.partition_of(client), asked) {
            (Some(p), _) => Some(p),
            (None, 0) => None,
            (None, n) if self.is_root(client) => Some((n - 1) as usize),
            (None, _) => return Err(Refusal::NotAllowed),
        };
        let f = match (part, self.parts.as_mut()) {
            (Some(p), Some(ps)) if p < ps.count => {
                let colors = *ps.colors(p);
                let f = self.frames.alloc(Some((&colors, &mut ps.cursor[p])), client.0).ok_or(Refusal::Taken)?;
                ps.record(p);
                f
            }
            (Some(_), _) => return Err(Refusal::Unknown),
            (None, _) => self.frames.alloc(None, client.0).ok_or(Refusal::Taken)?,
        };
        self.stats.frames_given += 1;
        Ok(f)
    }

    /// A page fault of `client` at `addr`: the frame is the address itself
    /// (sigma0's clients are idempotent), or its offset in the phys window.
    fn page_fault(&mut self, client: ThreadId, addr: u64, access: u64) -> Msg {
        let page = addr & !0xfff;
        let f = if (layout::PHYS_WINDOW..layout::PHYS_WINDOW + (1 << layout::PHYS_WINDOW_LOG2)).contains(&page) {
            page - layout::PHYS_WINDOW
        } else {
            page
        };
        let _ = access;
        match self.grant(client, f, true) {
            Ok(()) => {
                self.stats.faults_mapped += 1;
                let it = map_item(page, Fpage::new(f, 12, rights::ALL), false);
                Msg::new(Tag::new(0, 0, 2), &it)
            }
            Err(r) => refused(self.count(r)),
        }
    }

    /// A boot module's page, read-only, for the root task.
    fn module_page(&mut self, client: ThreadId, p: u64) -> Result<Msg, Refusal> {
        if !self.is_root(client) {
            return Err(Refusal::NotAllowed);
        }
        let p = p & !0xfff;
        let in_module = self
            .kip
            .mem_regions()
            .iter()
            .any(|r| r.kind == MemKind::Module as u32 && (r.base..r.base + r.size).contains(&p));
        if !in_module {
            return Err(Refusal::Unknown);
        }
        Ok(frame_reply(p, p, rights::READ))
    }

    fn take_ports(&mut self, client: ThreadId, fp: Fpage) -> Result<Msg, Refusal> {
        if !self.is_root(client) {
            return Err(Refusal::NotAllowed);
        }
        let (first, n) = fp.io_range().ok_or(Refusal::Unknown)?;
        let t = &mut self.ports_out;
        if (first..first + n).any(|q| t[q as usize / 64] & (1 << (q % 64)) != 0) {
            return Err(Refusal::Taken);
        }
        for q in first..first + n {
            t[q as usize / 64] |= 1 << (q % 64);
        }
        let it = map_item(0, fp, false);
        Ok(Msg::new(Tag::new(0, 0, 2), &it))
    }

    fn bind(&mut self, client: ThreadId, pager: ThreadId, part: u64) -> Result<Msg, Refusal> {
        if !self.is_root(client) {
            return Err(Refusal::NotAllowed);
        }
        let ps = self.parts.as_mut().ok_or(Refusal::Unknown)?;
        if ps.bind(pager, part as usize) {
            Ok(Msg::default())
        } else {
            Err(Refusal::NotAllowed)
        }
    }

    /// Answers one message from `from`.
    pub fn serve(&mut self, from: ThreadId, m: &Msg) -> Msg {
        let r = match m.tag().label() {
            label::PAGE_FAULT => return self.page_fault(from, m.mr[0], m.mr[2]),
            proto::GET_FRAME => {
                let f = m.mr[0] & !0xfff;
                self.grant(from, f, false).map(|_| frame_reply(f, f, rights::ALL))
            }
            proto::GET_ANY => self.any_frame(from, m.mr[0]).map(|f| frame_reply(f, f, rights::ALL)),
            proto::GET_MODULE => self.module_page(from, m.mr[0]),
            proto::GET_PORTS => self.take_ports(from, Fpage(m.mr[0])),
            proto::BIND => self.bind(from, ThreadId(m.mr[0]), m.mr[1]),
            proto::USAGE => match self.parts.as_ref() {
                Some(ps) => {
                    let mut w = [0u64; 6];
                    for (i, slot) in w.iter_mut().enumerate().take(ps.count) {
                        *slot = ps.used(i);
                    }
                    Ok(Msg::new(Tag::new(0, ps.count.min(6), 0), &w))
                }
                None => Err(Refusal::Unknown),
            },
            proto::STATS => Ok(Msg::new(Tag::new(0, Stats::WORDS, 0), &self.stats.to_words())),
            _ => Err(Refusal::Unknown),
        };
        r.unwrap_or_else(|e| refused(self.count(e)))
    }

    /// Serves forever.
    pub fn run(&mut self) -> ! {
        let mut reply_to = ThreadId::NIL;
        let mut reply = Msg::default();
        loop {
            match reply_wait(reply_to, &reply) {
                Ok((from, m)) => {
                    reply = self.serve(from, &m);
                    reply_to = from;
                }
                Err(_) => reply_to = ThreadId::NIL,
            }
        }
    }
}
