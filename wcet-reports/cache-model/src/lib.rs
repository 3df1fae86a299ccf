//! QEMU TCG plugin that simulates physically indexed L1D/L2/LLC caches from
//! the guest's physical addresses, opens and closes job windows on the magic
//! markers of [`abi::marker`], and writes one CSV row per job at exit. Used
//! by the `model` mode, where it makes the effect of cache coloring
//! deterministic and visible without hardware access.
//!
//! # Supported QEMU
//!
//! Full-system x86_64 (or i386) emulation with one vCPU, on every QEMU from
//! 7.2 (Debian 12, TCG plugin API 1) to 10.x (API 4, minimum 2): one build,
//! whose API generation is chosen when QEMU loads it ([`plugin::Generation`]:
//! API 1 up to QEMU 8.2, 2 on 9.0, 3 from 9.1 on). Tested on QEMU 7.2 and
//! 10.0. At install the plugin checks `qemu_info_t` and refuses, with a
//! message on stderr naming the API versions the QEMU offers and the ones it
//! serves ([`plugin::SUPPORTED`]), a QEMU it cannot serve, user-mode
//! emulation, other targets and `-smp` > 1. The QEMU functions are resolved
//! with `dlsym`, so a QEMU without plugin support is reported by name rather
//! than by a loader error.
//!
//! The bindings are hand-written (about fifteen calls; their prototypes per
//! generation follow QEMU's `include/qemu/qemu-plugin.h`, API 1 and the API 3
//! change of `qemu_plugin_insn_data`, and the calls QEMU 7.2 and 10.0 export)
//! rather than taken from the `qemu-plugin` crate: that
//! crate is GPL-2.0 (this project is MIT OR Apache-2.0), and it picks one API
//! version per build by Cargo feature, where one build has to serve both
//! Debian 12's QEMU and current ones.
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
//! `mem=CYCLES`, `cpi=CYCLES`, `policy=lru|plru`, `verbose=on`, `qemu=VERSION`
//! (for the CSV's first line; `prism` passes it).
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
//!   latency) and interference evictions, split by the [`model::Source`] of
//!   the evicting access.
//! * [`plugin`]: data loads and stores only; instruction fetches are not
//!   simulated (up to QEMU 10.0 nothing gives a guest-physical address for
//!   them), nor are page-table walks (QEMU does not report them to
//!   plugins). Accesses to MMIO are skipped. Instructions are counted
//!   exactly per instruction (markers excluded); an instruction that faults
//!   is counted once per attempt. Each access is attributed to kernel or user
//!   code by the virtual address of the instruction that made it
//!   ([`model::Source`]).
//!
//! Physical addresses come from `qemu_plugin_hwaddr_phys_addr`, which in
//! QEMU 7.2 returns the RAM-block offset; that equals the guest-physical
//! address for RAM below the PC machine's PCI hole, so keep `-m` at 2 GiB
//! or less.
//!
//! # CSV
//!
//! A first line starting with `#` names what made the file and which inputs
//! the run had ([`plugin::meta_line`]: `# cache-model qemu=10.0.2 api=3
//! qemu_api=2-4 inputs=data profile=...`; `inputs=data` means data loads and
//! stores, no instruction fetches), then [`model::CSV_HEADER`] and one row
//! per job, job sequence number = ordinal of the `JobBegin` marker from 0.
//! Integers only, `\n` line ends.

pub mod config;
pub mod model;
pub mod plugin;
pub mod sim;
