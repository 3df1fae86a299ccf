//! QEMU TCG plugin that simulates physically indexed L1D/L2/LLC caches from
//! the guest's physical addresses, opens and closes job windows on the magic
//! markers of [`abi::marker`], and writes one CSV row per job at exit. Used
//! by the `model` mode, where it makes the effect of cache coloring
//! deterministic and visible without hardware access.
//!
//! # Supported QEMU
//!
//! QEMU 7.2 (Debian 12's `qemu-system-x86_64`), TCG plugin API version 1,
//! full-system x86_64 (or i386) emulation with one vCPU. At load time the
//! plugin checks `qemu_info_t` and refuses, with a message on stderr, a QEMU
//! whose current plugin API version is not 1 (newer QEMUs changed several of
//! the calls used here), user-mode emulation, other targets and `-smp` > 1.
//! The QEMU functions are resolved with `dlsym` at install time, so a QEMU
//! without plugin support is reported by name rather than by a loader error.
//!
//! # Loading
//!
//! ```text
//! qemu-system-x86_64 -accel tcg -smp 1 -icount shift=0,sleep=off \
//!     -plugin file=/path/to/libcache_model.so,profile=host,out=/tmp/jobs.csv \
//!     ...
//! ```
//!
//! Arguments (`key=value`, see [`config::parse_args`]): `out=PATH`
//! (required), `profile=host|embedded`, `l1d=`/`l2=`/`llc=SIZE:WAYS[:LAT]`,
//! `mem=CYCLES`, `cpi=CYCLES`, `policy=lru|plru`, `verbose=on`.
//! `-icount shift=N,sleep=off` makes the run, and so the CSV, deterministic.
//!
//! # What is modelled
//!
//! * [`sim`]: set-associative, physically indexed levels (LRU or tree-PLRU,
//!   write-allocate, no write-back cost) in a non-inclusive hierarchy (no
//!   back-invalidation), 64-byte lines.
//! * [`model`]: per-job instructions, data accesses, hits/misses per level,
//!   model cycles (`instructions * cpi + per-access latency`, where an
//!   access costs the hit latency of the level that hit or the memory
//!   latency) and interference evictions.
//! * [`plugin`]: data loads and stores only; instruction fetches are not
//!   simulated (QEMU 7.2 gives no guest-physical address for them), nor are
//!   page-table walks (QEMU does not report them to plugins). Accesses to
//!   MMIO are skipped. Instructions are counted exactly per instruction
//!   (markers excluded); an instruction that faults is counted once per
//!   attempt.
//!
//! Physical addresses come from `qemu_plugin_hwaddr_phys_addr`, which in
//! QEMU 7.2 returns the RAM-block offset; that equals the guest-physical
//! address for RAM below the PC machine's PCI hole, so keep `-m` at 2 GiB
//! or less.
//!
//! # CSV
//!
//! [`model::CSV_HEADER`] plus one row per job, job sequence number = ordinal
//! of the `JobBegin` marker from 0. Integers only, `\n` line ends.

pub mod config;
pub mod model;
pub mod plugin;
pub mod sim;
