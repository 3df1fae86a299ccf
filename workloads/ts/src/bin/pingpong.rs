//! The IPC ping-pong pair (see `ts_loads`): `side=pong` serves, `side=ping
//! peer=NAME` calls.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use abi::ipc::Tag;
    use abi::syscall::{call, myself, reply_wait, Msg};
    use abi::ThreadId;
    use harness::Args;
    use user_rt::{info, println};

    user_rt::entry!(main);

    /// Label of a ping; the pong echoes MR1 + 1.
    const PING: u64 = 0x7011;

    fn pong() -> ! {
        let (mut to, mut reply) = (ThreadId::NIL, Msg::default());
        loop {
            match reply_wait(to, &reply) {
                Ok((from, m)) if m.tag().label() == PING => {
                    (to, reply) = (from, Msg::new(Tag::new(0, 1, 0), &[m.mr[0].wrapping_add(1)]));
                }
                _ => to = ThreadId::NIL,
            }
        }
    }

    fn main() {
        let Some(i) = info() else { user_rt::exit(1) };
        let args = Args::new(i.args());
        match args.get("side") {
            Some("pong") => pong(),
            Some("ping") => {}
            _ => {
                println!("pingpong {}: needs side=ping or side=pong", i.name());
                user_rt::exit(1)
            }
        }
        let rounds = args.number("rounds", 0).unwrap_or(0);
        let Some(peer) = args.get("peer").and_then(user_rt::lookup) else {
            println!("pingpong {}: no peer= task to call", i.name());
            user_rt::exit(1)
        };
        let t0 = myself().1;
        let (mut n, mut v) = (0u64, 0u64);
        while rounds == 0 || n < rounds {
            match call(peer, &Msg::new(Tag::new(PING, 1, 0), &[v])) {
                Ok(m) if m.mr[0] == v.wrapping_add(1) => v = m.mr[0],
                _ => {
                    println!("pingpong {}: the peer gave a wrong or no answer after {n} round(s)", i.name());
                    user_rt::exit(1)
                }
            }
            n += 1;
        }
        let t = myself().1 - t0;
        println!("pingpong {}: {n} round trip(s), {} TSC ticks each", i.name(), t / n.max(1));
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pingpong is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
