//! The kernel's copy of the Kernel Interface Page (layout in [`abi::kip`]).

use crate::memmap::MemMap;
use abi::kip::{Kip, Module, MAX_MODULES};

/// One page, page aligned, so it can be mapped read-only into user spaces
/// without exposing anything else.
#[repr(C, align(4096))]
pub struct KipPage(pub Kip);

const _: () = assert!(core::mem::size_of::<KipPage>() == 4096);

/// Fills `kip` from the memory map and the modules `(phys, size, cmdline)`.
pub fn fill<'a>(kip: &mut Kip, map: &MemMap, modules: impl Iterator<Item = (u64, u64, &'a str)>) {
    *kip = Kip::new();
    let v = env!("CARGO_PKG_VERSION").as_bytes();
    kip.kernel_version[..v.len()].copy_from_slice(v);
    for (slot, r) in kip.mem.iter_mut().zip(map.to_kip()) {
        *slot = r;
        kip.mem_count += 1;
    }
    for (slot, (phys, size, cmd)) in kip.modules.iter_mut().zip(modules.take(MAX_MODULES)) {
        let mut m = Module { phys_base: phys, size, name: [0; 48] };
        // The boot loader's path may be long: keep its file name and the
        // arguments (what `Module::name` and `Module::args` read).
        let cmd = cmd.trim_start();
        let (path, args) = cmd.split_once(' ').unwrap_or((cmd, ""));
        let file = path.rsplit('/').next().unwrap_or(path);
        let mut n = 0;
        for part in [file, if args.is_empty() { "" } else { " " }, args] {
            for &b in part.as_bytes() {
                if n < m.name.len() - 1 {
                    m.name[n] = b;
                    n += 1;
                }
            }
        }
        *slot = m;
        kip.module_count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::kip::MemKind;

    #[test]
    fn kip_describes_map_and_modules() {
        let map = MemMap::build([(0u64, 0x8000000u64, 1u32)].into_iter(), &[]).unwrap();
        let mut kip = Kip::new();
        let long = "/a/very/long/path/that/would/not/fit/into/the/kip/at/all/roottask";
        fill(&mut kip, &map, [(0x200000, 0x1234, "/boot/sigma0 test"), (0x300000, 0x10, long)].into_iter());
        assert_eq!(kip.magic, abi::kip::KIP_MAGIC);
        assert_eq!(kip.mem_regions().len(), 2);
        assert_eq!(kip.mem_regions()[1].kind, MemKind::Usable as u32);
        assert_eq!(kip.modules()[0].name(), "sigma0");
        assert_eq!(kip.modules()[0].args().collect::<Vec<_>>(), ["test"]);
        assert_eq!(kip.modules()[1].name(), "roottask");
    }
}
