//! Cache geometry, page-color arithmetic, colored frame pools and partition
//! specs.
//!
//! This crate is `no_std` and host-tested. It will read the cache geometry
//! from CPUID (Intel leaf 4, AMD 0x8000001D with the legacy leaves as
//! fallback), compute the page color of a physical frame for a chosen cache
//! level, keep per-color free lists so that a pager can allocate "any frame
//! of color set S" in O(1), and parse and validate partition specs written
//! like Xen's `llc-colors` (`"0-7,12,14-15"`). sigma0 uses it to hand each
//! pager only frames of its own partition's colors.
//!
//! The modules, bottom up:
//!
//! - [`geometry`]: [`CacheLevel`] / [`CacheGeometry`], read from CPUID through
//!   `raw-cpuid` ([`CacheGeometry::from_cpuid`] takes any CPUID reader, so
//!   recorded leaves can be fed through [`RecordedCpuid`]), built from a
//!   config ([`CacheGeometry::new`], [`CacheGeometry::with_override`]), or
//!   taken from the profiles [`SKYLAKE_CLIENT`], [`ZEN4`] and
//!   [`EMBEDDED_1M_16W`]. Page colors of a level = size / (ways x page size).
//! - [`colorset`]: [`ColorSet`], a fixed-size bitmap of up to [`MAX_COLORS`]
//!   colors with set algebra and iteration.
//! - [`color`]: [`ColorMap`], the arithmetic for one level (by default the
//!   last level): color of a frame, the address bits that select it, the
//!   colors a contiguous range covers, the memory a color set holds.
//! - [`pool`]: [`FramePool`], per-color intrusive free lists over a
//!   caller-provided link array; O(1) alloc/free, round-robin allocation
//!   over a color set, statistics, and errors (never corruption) for double
//!   frees and foreign frames.
//! - [`partition`]: parsing of color specs and validation of named
//!   partitions against a geometry, with typed errors that name the
//!   offending text.
//!
//! There is no heap allocation and no `unsafe` code in the library.
//!
//! ```
//! use cache_color::*;
//!
//! // Geometry: detected, from a profile, or from a config.
//! let map = ColorMap::for_geometry(&ZEN4).unwrap(); // LLC: 512 colors
//! assert_eq!(map.color_mask(), Some(0x1ff << 12));
//!
//! // Partitions from the config, validated against the geometry and memory.
//! let memory = [MemRegion::new(0, 64 << 20)];
//! let specs = [
//!     PartitionSpec::new("rt", "0-63").with_memory(4 << 20),
//!     PartitionSpec::new("ts", "64-511"),
//! ];
//! let mut parts = [Partition::EMPTY; 2];
//! let parts = validate_into(&specs, &map, &memory, &mut parts).unwrap();
//!
//! // A pool over the same memory; its storage (8 bytes per frame and per
//! // color) is the caller's.
//! let mut links = vec![FrameLink::UNOWNED; (64 << 20) / 4096];
//! let mut lists = [ColorList::EMPTY; 512];
//! let mut pool = FramePool::new(map, 0, &mut links, &mut lists).unwrap();
//! pool.add_range(0, 64 << 20).unwrap();
//! let mut cursor = RoundRobin::new();
//! let frame = pool.alloc_in(&parts[0].colors, &mut cursor).unwrap();
//! assert!(parts[0].colors.contains(map.color_of(frame)));
//! pool.free(frame).unwrap();
//! assert_eq!(pool.free(frame), Err(PoolError::AlreadyFree(frame)));
//!
//! // A malformed spec names the offending item.
//! let bad = [PartitionSpec::new("rt", "0-7,5")];
//! assert_eq!(
//!     validate(&bad, &map, &memory).unwrap_err().to_string(),
//!     r#"partition "rt": colors "0-7,5": "5" repeats color 5"#
//! );
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod color;
pub mod colorset;
pub mod geometry;
pub mod partition;
pub mod pool;

pub use color::{ColorError, ColorMap};
pub use colorset::{Color, ColorSet, MAX_COLORS};
pub use geometry::{
    profile, CacheGeometry, CacheKind, CacheLevel, GeometryError, GeometrySource, RecordedCpuid, EMBEDDED_1M_16W,
    PAGE_SIZE, PROFILES, SKYLAKE_CLIENT, ZEN4,
};
pub use partition::{
    check_each, parse_colors, validate, validate_into, validate_into_with, validate_with, MemRegion, Partition,
    PartitionError, PartitionSpec, Sharing, SpecError,
};
pub use pool::{ColorList, FrameLink, FramePool, PoolError, PoolStats, RoundRobin};
pub use raw_cpuid;
