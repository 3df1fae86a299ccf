//! Loading the root task: the first boot module's ELF image is copied into
//! the root thread's address space, with a stack below its UTCB.

use crate::arch::paging::{self, AddressSpace, MapError, Rights};
use crate::pool::FramePool;
use crate::types::{PhysAddr, VirtAddr};
use elfload::ElfError;

#[derive(Clone, Copy, Debug)]
pub enum LoadError {
    Elf(ElfError),
    Map(MapError),
}

impl From<MapError> for LoadError {
    fn from(e: MapError) -> Self {
        LoadError::Map(e)
    }
}

/// Loads `image` into `space` and maps the initial stack; returns the
/// entry. `on_map` hears of every page mapped (for the mapping database).
pub fn load(
    space: &mut AddressSpace,
    image: &[u8],
    pool: &mut FramePool,
    on_map: &mut dyn FnMut(VirtAddr, PhysAddr, Rights),
) -> Result<u64, LoadError> {
    let img = elfload::parse(image, abi::USER_END).map_err(LoadError::Elf)?;
    elfload::load(image, &img, |page, r, fill| {
        let rights = Rights { write: r.write, exec: r.exec };
        let page = VirtAddr::user(page).ok_or(MapError::BadAddress)?;
        let frame = space.map_fresh(page, rights, pool)?;
        on_map(page, frame, rights);
        let dst = paging::phys_to_virt(frame).ok_or(MapError::BadAddress)?;
        // SAFETY: `dst` is the direct-map address of the frame just mapped
        // for this page, which nothing else references yet.
        fill(unsafe { &mut *dst.as_mut_ptr::<[u8; 4096]>() });
        Ok::<(), MapError>(())
    })?;
    for page in (abi::ROOT_STACK_TOP - abi::ROOT_STACK_SIZE..abi::ROOT_STACK_TOP).step_by(4096) {
        let rights = Rights { write: true, exec: false };
        let page = VirtAddr::user(page).ok_or(MapError::BadAddress)?;
        let f = space.map_fresh(page, rights, pool)?;
        on_map(page, f, rights);
    }
    Ok(img.entry)
}
