//! Simulator-only throughput (no QEMU): `cargo run --release --example
//! simbench -p cache-model [-- host|embedded]`. Streams over 16 MiB with a
//! 64-byte stride (misses in L1D/L2, LLC hits after the first pass), then
//! loops over 16 KiB (L1D hits).
use std::time::Instant;

use cache_model::config::Config;
use cache_model::model::{Model, Source};

fn main() {
    let profile = std::env::args().nth(1).unwrap_or_else(|| "host".into());
    let cfg = Config::profile(&profile).expect("profile");
    for (name, span, passes) in [("stream 16 MiB", 16u64 << 20, 40u64), ("loop 16 KiB", 16 << 10, 40 * 1024)] {
        let mut m = Model::new(cfg.clone());
        m.job_begin(0);
        let t = Instant::now();
        let mut n = 0u64;
        for _ in 0..passes {
            let mut a = 0x100_0000;
            while a < 0x100_0000 + span {
                m.access(a, 4, Source::User);
                a += 64;
                n += 1;
            }
        }
        m.job_end(0);
        let s = t.elapsed().as_secs_f64();
        println!("{profile} {name}: {n} accesses in {s:.2} s = {:.1} M accesses/s", n as f64 / s / 1e6);
    }
}
