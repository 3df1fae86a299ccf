//! TS loads that need the TS pager, one binary chosen by `mode=`:
//!
//! - `storm rounds=R pages=P`: a page-fault storm. Each round maps P fresh
//!   pages (anonymous mappings and the heap break in turn), touches every
//!   one (each must read zero: a frame given back earlier is never seen
//!   again with its old contents), and gives them back. Ends with the
//!   count of pages that did not read zero as its status, and prints the
//!   fault rate.
//! - `produce fd=F bytes=N seed=S`: writes N bytes of a pattern into pipe
//!   descriptor F, closes it and ends.
//! - `consume fd=F bytes=N seed=S`: reads descriptor F to end of file and
//!   checks that exactly the N bytes of the pattern came, in order. Ends
//!   with 0 if so.
//!
//! A parent spawns them (`user_rt::ts::spawn`) with the descriptors they
//! use; the description can name them too (`role=ts`, `pager=` the TS
//! pager).
#![cfg_attr(target_os = "none", no_std, no_main)]

/// The pipe pattern's byte at position `i`.
pub fn pattern(i: u64, seed: u64) -> u8 {
    (i.wrapping_mul(131).wrapping_add(seed) ^ (i >> 9)) as u8
}

#[cfg(target_os = "none")]
mod load {
    use crate::pattern;
    use abi::ipc::root::TaskInfo;
    use abi::syscall::myself;
    use user_rt::ts::{self, Fd};
    use user_rt::{info, println};

    user_rt::entry!(main);

    fn num(i: &TaskInfo, key: &str, default: u64) -> u64 {
        i.arg(key).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    fn us(t0: u64) -> u64 {
        let (_, t, hz) = myself();
        ((t - t0) as u128 * 1_000_000 / hz.max(1) as u128) as u64
    }

    /// Touches `pages` pages from `base`: each must read zero, then gets
    /// a mark. Returns how many did not read zero.
    fn touch(base: u64, pages: u64) -> u64 {
        let mut bad = 0;
        for p in 0..pages {
            let a = (base + p * 4096) as *mut u64;
            // SAFETY: a page of this task's own fresh memory (a mapping or
            // the heap below the break, just made); the pager backs it on
            // this first touch.
            unsafe {
                if a.read_volatile() != 0 || a.add(511).read_volatile() != 0 {
                    bad += 1;
                }
                a.write_volatile(0x5eed_0000 + p);
                a.add(511).write_volatile(!p);
            }
        }
        bad
    }

    fn storm(i: &TaskInfo) -> u64 {
        let (rounds, pages) = (num(i, "rounds", 16), num(i, "pages", 64));
        let t0 = myself().1;
        let before = ts::stats().map_or(0, |s| s.faults_mapped);
        let mut bad = 0;
        for r in 0..rounds {
            let len = pages * 4096;
            if r % 2 == 0 {
                let Ok(a) = ts::map(len) else { return u64::MAX };
                bad += touch(a, pages);
                if ts::unmap(a, len).is_err() {
                    return u64::MAX;
                }
            } else {
                let Ok(a) = ts::sbrk(len as i64) else { return u64::MAX };
                bad += touch(a, pages);
                if ts::sbrk(-(len as i64)).is_err() {
                    return u64::MAX;
                }
            }
        }
        let t = us(t0).max(1);
        let faults = ts::stats().map_or(0, |s| s.faults_mapped) - before;
        println!(
            "ts-load storm: {rounds} rounds x {pages} pages: {faults} faults in {t} us ({} faults/s); {bad} page(s) not zero",
            faults * 1_000_000 / t
        );
        bad
    }

    fn produce(i: &TaskInfo) -> u64 {
        let (fd, bytes, seed) = (Fd(num(i, "fd", 1)), num(i, "bytes", 65536), num(i, "seed", 1));
        let mut buf = [0u8; ts::IO_MAX];
        let mut at = 0u64;
        while at < bytes {
            let n = (bytes - at).min(buf.len() as u64) as usize;
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(at + k as u64, seed);
            }
            if let Err(e) = ts::write_all(fd, &buf[..n]) {
                println!("ts-load produce: write failed after {at} bytes: {e:?}");
                return 1;
            }
            at += n as u64;
        }
        let _ = ts::close(fd);
        0
    }

    fn consume(i: &TaskInfo) -> u64 {
        let (fd, bytes, seed) = (Fd(num(i, "fd", 0)), num(i, "bytes", 65536), num(i, "seed", 1));
        let t0 = myself().1;
        let mut buf = [0u8; ts::IO_MAX];
        let (mut at, mut wrong, mut reads) = (0u64, 0u64, 0u64);
        loop {
            match ts::read(fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    reads += 1;
                    for (k, b) in buf[..n].iter().enumerate() {
                        wrong += (*b != pattern(at + k as u64, seed)) as u64;
                    }
                    at += n as u64;
                }
                Err(e) => {
                    println!("ts-load consume: read failed after {at} bytes: {e:?}");
                    return 1;
                }
            }
        }
        let t = us(t0).max(1);
        println!(
            "ts-load consume: {at} of {bytes} bytes in {reads} reads, {t} us ({} KiB/s); {wrong} wrong; end of file",
            at * 1_000_000 / 1024 / t
        );
        (at != bytes || wrong != 0) as u64
    }

    fn main() {
        let Some(i) = info() else {
            println!("ts-load: started without a description");
            user_rt::exit(1)
        };
        let status = match i.arg("mode").unwrap_or("") {
            "storm" => storm(i),
            "produce" => produce(i),
            "consume" => consume(i),
            other => {
                println!("ts-load: unknown mode `{other}` (storm, produce, consume)");
                1
            }
        };
        user_rt::exit(status)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ts-load is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
