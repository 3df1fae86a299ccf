//! `mode=pager`: a pager of TS tasks that fails on purpose. It loads each
//! client's image into frames from sigma0 (of the partition it is bound
//! to), backs its stack and heap on first touch, answers its `GET_INFO`,
//! `LOOKUP` and `EXIT` as the TS pager does (its clients may not send to
//! the root task), and after `crash_after=N` faults crashes with `ud2`
//! while a client waits for its answer, or after `hang_after=N` faults
//! stops answering anyone (a closed receive nobody can satisfy).

use abi::ipc::pager as proto;
use abi::ipc::root::{self as rproto, TaskInfo};
use abi::layout;
use abi::syscall::{self as sc, Msg};
use abi::{ThreadId, Timeout};
use pager::load::{self, DATA};
use pager::msg::{self, Fault, Words};
use pager::root::{self, Client};
use pager::sigma0;
use pager::table::Pages;
use user_rt::println;

/// Clients one such pager serves.
const MAX_CLIENTS: usize = 8;
/// Pages it backs in all (32 MiB).
const TABLE: usize = 8192;

static mut PAGES: Pages<TABLE> = Pages::new();

struct Fails {
    crash_after: u64,
    hang_after: u64,
}

struct Pager {
    clients: heapless::Vec<(ThreadId, TaskInfo), MAX_CLIENTS>,
    pages: &'static mut Pages<TABLE>,
    faults: u64,
    fails: Fails,
}

impl Pager {
    fn load(&mut self, c: &Client) -> Result<(), &'static str> {
        let info = root::client_info(c.thread).map_err(|_| "the root task gave no description entry")?;
        let idx = self.clients.len();
        self.clients.push((c.thread, info)).map_err(|_| "too many clients")?;
        let bytes = c.module.bytes();
        let img = elfload::parse(bytes, layout::IMAGE_END).map_err(|_| "not a loadable ELF image")?;
        let pages = &mut *self.pages;
        load::eager(bytes, &img, &[], |v, r, fill| {
            let f = sigma0::frame(None).map_err(|_| "no frame from sigma0")?;
            fill(sigma0::page(f));
            pages.insert(idx, v, f, r).map(|_| ()).map_err(|_| "table full")
        })?;
        c.module.release();
        root::client_ready(c.thread, img.entry, layout::STACK_TOP).map_err(|_| "the root task did not start it")
    }

    fn fault(&mut self, idx: usize, f: Fault) -> Words {
        self.faults += 1;
        if self.faults == self.fails.crash_after {
            println!("isolation-test pager: crashing on purpose at fault {} (ip {:#x})", self.faults, f.ip);
            // SAFETY: an undefined instruction: the pager's own #UD, which
            // its handler (the root task) reports; it never returns.
            unsafe { core::arch::asm!("ud2", options(noreturn, nostack, nomem)) }
        }
        if self.faults == self.fails.hang_after {
            println!("isolation-test pager: answering nobody from fault {} on", self.faults);
            loop {
                let _ = sc::receive(sc::myself().0, Timeout::NEVER);
            }
        }
        let page = f.page();
        if let Some((frame, r)) = self.pages.lookup(idx, page).filter(|&(_, r)| f.allowed_by(r)) {
            return msg::map_reply(page, frame, r);
        }
        let i = &self.clients[idx].1;
        let stack = i.stack_top - i.stack_size..i.stack_top;
        let heap = i.heap_base..i.heap_base + i.heap_size;
        if self.pages.lookup(idx, page).is_some() || !(stack.contains(&page) || heap.contains(&page)) {
            return msg::refusal();
        }
        let Ok(frame) = sigma0::frame(None) else { return msg::refusal() };
        if self.pages.insert(idx, page, frame, DATA).is_err() {
            return msg::refusal();
        }
        msg::map_reply(page, frame, DATA)
    }

    fn handle(&mut self, from: ThreadId, m: &Msg) -> Option<Words> {
        let idx = self.clients.iter().position(|c| c.0 == from);
        if let Some(f) = Fault::of(m) {
            return Some(idx.map_or_else(msg::refusal, |i| self.fault(i, f)));
        }
        let mut w = [0u64; abi::ipc::MAX_MRS - 1];
        m.words(&mut w);
        Some(match (m.tag().label(), idx) {
            (proto::STATS, _) => Words::ok(&[self.faults]),
            (rproto::GET_INFO, Some(i)) => Words::ok(&self.clients[i].1.to_words()),
            (rproto::EXIT, Some(_)) => match root::client_exit(from, w[0]) {
                Ok(()) => Words::ok(&[]),
                Err(_) => Words::new(rproto::REFUSED),
            },
            (rproto::LOOKUP, Some(_)) => match root::lookup(&w[..4]) {
                Ok(t) => Words::ok(&[t.0]),
                Err(_) => Words::new(rproto::REFUSED),
            },
            _ => Words::new(proto::REFUSED),
        })
    }
}

pub fn run(i: &TaskInfo) -> u64 {
    let arg = |k| i.arg(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    let pages = &raw mut PAGES;
    // SAFETY: the pager has one thread, and this is the only reference to
    // the table ever made.
    let pages = unsafe { &mut *pages };
    let fails = Fails { crash_after: arg("crash_after"), hang_after: arg("hang_after") };
    let mut p = Pager { clients: heapless::Vec::new(), pages, faults: 0, fails };
    let n = root::load_clients("isolation-test pager", |c| p.load(c));
    println!("isolation-test pager: {n} client(s) loaded; serving");
    msg::serve(|from, m| p.handle(from, m))
}
