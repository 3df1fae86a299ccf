//! Kernel Interface Page: what the kernel tells user level about the machine.
//!
//! One read-only page mapped at [`crate::KIP_VADDR`] in every address space.
//! Pagers read the physical memory map and the boot modules from it, the
//! measurement harness reads the TSC frequency, and the cache-color code
//! reads the cache geometry. All fields are plain little-endian integers so
//! the layout is the same for the kernel and every user crate.

/// `"PRSM"` read as a little-endian `u32`.
pub const KIP_MAGIC: u32 = u32::from_le_bytes(*b"PRSM");
/// Bumped whenever the KIP layout or the syscall ABI changes.
pub const ABI_VERSION: u32 = 2;

/// Capacity of the memory map in the KIP.
pub const MAX_MEM_REGIONS: usize = 64;
/// Capacity of the boot module table in the KIP.
pub const MAX_MODULES: usize = 16;
/// Capacity of the cache level table in the KIP.
pub const MAX_CACHE_LEVELS: usize = 4;

/// Kind of a physical memory region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MemKind {
    /// Free RAM, available to sigma0.
    Usable = 1,
    /// Firmware, ACPI, MMIO holes and everything else not RAM.
    Reserved = 2,
    /// The kernel image, its page tables and pools.
    Kernel = 3,
    /// A boot module (sigma0, pagers, workloads, config).
    Module = 4,
}

/// One physical memory region, page aligned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MemRegion {
    pub base: u64,
    pub size: u64,
    /// A [`MemKind`] value.
    pub kind: u32,
    pub _pad: u32,
}

/// One boot module as loaded by the boot loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Module {
    pub phys_base: u64,
    pub size: u64,
    /// The module's command line (its name first), NUL padded.
    pub name: [u8; 48],
}

/// One cache level as the kernel detected it (filled by the cache-color
/// issue; zero `size` means unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CacheLevel {
    pub level: u8,
    /// 1 data, 2 instruction, 3 unified.
    pub kind: u8,
    pub ways: u16,
    pub line_size: u32,
    pub size: u64,
}

/// The KIP itself. Fits in one page (checked at compile time).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Kip {
    pub magic: u32,
    pub abi_version: u32,
    /// Kernel version, NUL padded.
    pub kernel_version: [u8; 16],
    /// TSC ticks per second; 0 while unknown.
    pub tsc_hz: u64,
    pub mem_count: u32,
    pub module_count: u32,
    pub mem: [MemRegion; MAX_MEM_REGIONS],
    pub modules: [Module; MAX_MODULES],
    pub cache_count: u32,
    pub _pad: u32,
    pub caches: [CacheLevel; MAX_CACHE_LEVELS],
    /// Thread id of sigma0, the root pager (0 while none runs).
    pub sigma0_id: u64,
    /// Thread id of the root task, the loader and supervisor (0 while none
    /// runs).
    pub root_id: u64,
}

const _: () = assert!(core::mem::size_of::<Kip>() <= crate::PAGE_SIZE as usize);

impl Kip {
    /// An empty KIP with magic and version set.
    pub const fn new() -> Self {
        Kip {
            magic: KIP_MAGIC,
            abi_version: ABI_VERSION,
            kernel_version: [0; 16],
            tsc_hz: 0,
            mem_count: 0,
            module_count: 0,
            mem: [MemRegion { base: 0, size: 0, kind: 0, _pad: 0 }; MAX_MEM_REGIONS],
            modules: [Module { phys_base: 0, size: 0, name: [0; 48] }; MAX_MODULES],
            cache_count: 0,
            _pad: 0,
            caches: [CacheLevel { level: 0, kind: 0, ways: 0, line_size: 0, size: 0 }; MAX_CACHE_LEVELS],
            sigma0_id: 0,
            root_id: 0,
        }
    }

    /// The valid part of the memory map.
    pub fn mem_regions(&self) -> &[MemRegion] {
        &self.mem[..(self.mem_count as usize).min(MAX_MEM_REGIONS)]
    }

    /// The valid part of the module table.
    pub fn modules(&self) -> &[Module] {
        &self.modules[..(self.module_count as usize).min(MAX_MODULES)]
    }

    /// The module named `name` and its index.
    pub fn module(&self, name: &str) -> Option<(usize, &Module)> {
        self.modules().iter().enumerate().find(|(_, m)| m.name() == name)
    }
}

impl Default for Kip {
    fn default() -> Self {
        Self::new()
    }
}

impl Module {
    /// The module's command line (the boot loader's text, NUL padding cut).
    pub fn cmdline(&self) -> &str {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..end]).unwrap_or("?")
    }

    /// The module's name: the file name of the first word of its command
    /// line (QEMU `-initrd` and GRUB both put the path there).
    pub fn name(&self) -> &str {
        let first = self.cmdline().split(' ').next().unwrap_or("");
        first.rsplit('/').next().unwrap_or(first)
    }

    /// The words of the command line after the path.
    pub fn args(&self) -> impl Iterator<Item = &str> {
        self.cmdline().split(' ').skip(1).filter(|w| !w.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(cmd: &str) -> Module {
        let mut m = Module { phys_base: 0, size: 0, name: [0; 48] };
        m.name[..cmd.len()].copy_from_slice(cmd.as_bytes());
        m
    }

    #[test]
    fn module_name_and_args() {
        let m = module("build/modules/sigma0 test  fast");
        assert_eq!(m.name(), "sigma0");
        assert_eq!(m.args().collect::<Vec<_>>(), ["test", "fast"]);
        assert_eq!(module("sigma0").name(), "sigma0");
        assert_eq!(module("").name(), "");
    }
}
