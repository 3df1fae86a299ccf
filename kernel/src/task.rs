//! Loading the root task: the first boot module's ELF image is copied into
//! the root thread's address space, with a stack below its UTCB.

use crate::arch::paging::{self, AddressSpace, MapError, Rights};
use crate::elfload::{self, ElfError};
use crate::pool::FramePool;

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

/// Loads `image` into `space` and maps the root stack; returns the entry.
/// `on_map` hears of every page mapped (for the mapping database).
pub fn load(
    space: &mut AddressSpace,
    image: &[u8],
    pool: &mut FramePool,
    on_map: &mut dyn FnMut(u64, u64, Rights),
) -> Result<u64, LoadError> {
    let img = elfload::parse(image, abi::USER_END).map_err(LoadError::Elf)?;
    for s in &img.segments {
        let rights = Rights { write: s.write, exec: s.exec };
        let first = s.vaddr & !0xfff;
        for page in (first..s.vaddr + s.memsz).step_by(4096) {
            let frame = match space.translate(page) {
                Some(t) => t.phys & !0xfff,
                None => {
                    let f = space.map_fresh(page, rights, pool)?;
                    on_map(page, f, rights);
                    f
                }
            };
            // Copy the part of the file that falls into this page.
            let lo = page.max(s.vaddr);
            let hi = (page + 4096).min(s.vaddr + s.filesz);
            if lo < hi {
                let src = &image[(s.offset + (lo - s.vaddr)) as usize..(s.offset + (hi - s.vaddr)) as usize];
                let dst = paging::phys_to_virt(frame + (lo - page)).ok_or(MapError::BadAddress)?;
                // SAFETY: `dst` is inside the frame just mapped for this
                // page, `src` inside the module; lengths agree.
                unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
            }
        }
    }
    for page in (abi::ROOT_STACK_TOP - abi::ROOT_STACK_SIZE..abi::ROOT_STACK_TOP).step_by(4096) {
        let rights = Rights { write: true, exec: false };
        let f = space.map_fresh(page, rights, pool)?;
        on_map(page, f, rights);
    }
    Ok(img.entry)
}
