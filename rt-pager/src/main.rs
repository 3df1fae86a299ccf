//! The real-time pager: a user-level pager stacked on sigma0 and bound to
//! the RT partition (the root task binds it before it starts).
//!
//! It asks the root task for its clients one by one and loads each before
//! it starts: every page of its image, its stack and the heap its
//! description declares gets a frame from sigma0 (a bound pager gets only
//! its partition's colours, round robin over them, so each task's pages
//! are spread over all its colours). The client's runtime touches every
//! page before `main` (`user_rt::prefault`), so every mapping is made
//! before the first job. Once a client says its run starts
//! (`abi::ipc::pager::RUN_START`), each fault of it is a reported error
//! (task, address, IP) and refused, never a silent map; the root task, its
//! exception handler, then reports and removes it. Frames are never given
//! back during a run.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

mod policy;

#[cfg(target_os = "none")]
mod server {
    use crate::policy::{answer, Answer};
    use abi::ipc::pager::{self as proto, Stats};
    use abi::ipc::root::NAME_MAX;
    use abi::layout;
    use abi::syscall::{myself, Msg};
    use abi::ThreadId;
    use pager::load;
    use pager::msg::{self, Fault, Words};
    use pager::root::{self, Client};
    use pager::sigma0::{self, Refused};
    use pager::table::Pages;
    use user_rt::println;

    user_rt::entry!(main);

    /// Clients one RT pager serves.
    const MAX_CLIENTS: usize = 16;
    /// Pages it backs in all (64 MiB of RT memory).
    const TABLE: usize = 16384;

    static mut PAGES: Pages<TABLE> = Pages::new();

    struct Rt {
        thread: ThreadId,
        name: [u8; NAME_MAX],
        run: bool,
        stats: Stats,
    }

    impl Rt {
        fn name(&self) -> &str {
            let end = self.name.iter().position(|&c| c == 0).unwrap_or(NAME_MAX);
            core::str::from_utf8(&self.name[..end]).unwrap_or("?")
        }
    }

    struct Pager {
        clients: heapless::Vec<Rt, MAX_CLIENTS>,
        pages: &'static mut Pages<TABLE>,
    }

    enum LoadError {
        Elf(elfload::ElfError),
        Sigma0(Refused),
        Root(Refused),
        TableFull,
        TooManyClients,
    }

    impl core::fmt::Display for LoadError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                LoadError::Elf(e) => write!(f, "bad ELF image ({e:?})"),
                LoadError::Sigma0(r) => write!(f, "sigma0 gave no frame ({r:?})"),
                LoadError::Root(r) => write!(f, "the root task did not start it ({r:?})"),
                LoadError::TableFull => write!(f, "the pager's table is full ({TABLE} pages)"),
                LoadError::TooManyClients => write!(f, "more than {MAX_CLIENTS} clients"),
            }
        }
    }

    impl Pager {
        /// Backs every page of client `c` and has the root task start it.
        fn load(&mut self, c: &Client) -> Result<(), LoadError> {
            let idx = self.clients.len();
            let mut name = [0u8; NAME_MAX];
            abi::ipc::root::set_text(&mut name, c.name());
            self.clients
                .push(Rt { thread: c.thread, name, run: false, stats: Stats::default() })
                .map_err(|_| LoadError::TooManyClients)?;
            let bytes = c.module.bytes();
            let img = elfload::parse(bytes, layout::IMAGE_END).map_err(LoadError::Elf)?;
            let stack = layout::STACK_TOP - c.stack..layout::STACK_TOP;
            let heap = layout::HEAP_BASE..layout::HEAP_BASE + c.heap;
            let pages = &mut *self.pages;
            let t0 = myself().1;
            let n = load::eager(bytes, &img, &[stack, heap], |v, r, fill| {
                let f = sigma0::frame(None).map_err(LoadError::Sigma0)?;
                fill(sigma0::page(f));
                pages.insert(idx, v, f, r).map(|_| ()).map_err(|_| LoadError::TableFull)
            })?;
            let (_, t1, hz) = myself();
            c.module.release();
            let us = (t1 - t0) as u128 * 1_000_000 / hz.max(1) as u128;
            println!(
                "rt-pager: loaded {}: {n} pages ({} KiB) from sigma0 in {us} us ({} frames/s)",
                c.name(),
                n * 4,
                n as u128 * 1_000_000 / us.max(1)
            );
            self.clients[idx].stats.frames = n;
            // `just bench`'s coloured-frame row: with the argument `bench`,
            // the load's TSC ticks (guest instructions under -icount) per
            // 4 MiB of frames, as one benchmark line.
            if user_rt::info().is_some_and(|i| i.args().split_whitespace().any(|w| w == "bench")) && n > 0 {
                let per_4m = (t1 - t0) * 1024 / n as u64;
                let s = abi::bench::Summary { rounds: 1, min: per_4m, median: per_4m, p99: per_4m, max: per_4m };
                println!("{}", abi::bench::Line("rt_pager_frames_4m", s));
            }
            root::client_ready(c.thread, img.entry, layout::STACK_TOP).map_err(LoadError::Root)
        }

        fn client(&mut self, t: ThreadId) -> Option<&mut Rt> {
            self.clients.iter_mut().find(|c| c.thread == t)
        }

        fn fault(&mut self, from: ThreadId, f: Fault) -> Words {
            let Some(idx) = self.clients.iter().position(|c| c.thread == from) else {
                println!("rt-pager: a page fault from thread {:#x}, not a client: refused", from.0);
                return msg::refusal();
            };
            let backing = self.pages.lookup(idx, f.page());
            let c = &mut self.clients[idx];
            match answer(c.run, backing, f.write, f.exec) {
                Answer::Map(frame, r) => {
                    c.stats.faults_mapped += 1;
                    msg::map_reply(f.page(), frame, r)
                }
                Answer::Refuse(why) => {
                    c.stats.faults_refused += 1;
                    if c.run {
                        c.stats.run_faults += 1;
                    }
                    println!(
                        "rt-pager: ERROR: RT task {} faulted {}: {} at {:#x}, ip {:#x}; refused",
                        c.name(),
                        why.text(),
                        f.access(),
                        f.addr,
                        f.ip
                    );
                    msg::refusal()
                }
            }
        }

        fn stats(&self, of: ThreadId) -> Words {
            let mut s = Stats::default();
            for c in self.clients.iter().filter(|c| of.is_nil() || c.thread == of) {
                s.faults_mapped += c.stats.faults_mapped;
                s.faults_refused += c.stats.faults_refused;
                s.run_faults += c.stats.run_faults;
                s.frames += c.stats.frames;
            }
            Words::ok(&s.to_words())
        }

        fn handle(&mut self, from: ThreadId, m: &Msg) -> Option<Words> {
            if let Some(f) = Fault::of(m) {
                return Some(self.fault(from, f));
            }
            Some(match m.tag().label() {
                proto::RUN_START => match self.client(from) {
                    Some(c) => {
                        c.run = true;
                        Words::ok(&[c.stats.faults_mapped])
                    }
                    None => Words::new(proto::REFUSED),
                },
                proto::STATS => self.stats(ThreadId(m.mr[0])),
                _ => Words::new(proto::REFUSED),
            })
        }
    }

    fn main() {
        let pages = &raw mut PAGES;
        // SAFETY: the pager has one thread, and this is the only reference
        // to the table ever made.
        let pages = unsafe { &mut *pages };
        let mut p = Pager { clients: heapless::Vec::new(), pages };
        let n = root::load_clients("rt-pager", |c| p.load(c));
        println!("rt-pager: {n} client(s) loaded, {} page(s) backed; serving", p.pages.used());
        msg::serve(|from, m| p.handle(from, m))
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("rt-pager is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
