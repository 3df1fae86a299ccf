//! QEMU TCG plugin that simulates physically indexed L1D/L2/LLC caches from
//! the guest's physical addresses, opens and closes job windows on the magic
//! markers of [`abi::marker`], and writes one CSV row per job at exit. Used
//! by the `model` mode, where it makes the effect of cache coloring
//! deterministic and visible without hardware access.
