//! The root task: the first boot module, loaded from its ELF image into an
//! address space of its own and started in ring 3.
//!
//! Kernel core I replaces this with threads and TCBs; until then there is
//! one user thread, whose kernel stack is a static.

use crate::arch::boot::{Stack, BOOT_STACK_SIZE};
use crate::arch::cpu;
use crate::arch::paging::{self, AddressSpace, MapError, Rights};
use crate::arch::trap::{self, TrapFrame};
use crate::elfload::{self, ElfError};
use crate::kprintln;
use crate::pool::FramePool;
use spin::Mutex;

static mut ROOT_KSTACK: Stack = Stack([0; BOOT_STACK_SIZE]);

/// The running user task (there is one until kernel core I).
pub static CURRENT: Mutex<Option<Task>> = Mutex::new(None);

pub struct Task {
    pub name: heapless::String<32>,
    pub space: AddressSpace,
}

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

/// Loads `image` into a new address space, maps the KIP and a stack.
pub fn load(
    name: &str,
    image: &[u8],
    kip_phys: u64,
    pool: &mut FramePool,
) -> Result<(Task, u64), LoadError> {
    let img = elfload::parse(image, abi::USER_END).map_err(LoadError::Elf)?;
    let mut space = AddressSpace::new(pool)?;
    for s in &img.segments {
        let rights = Rights {
            write: s.write,
            exec: s.exec,
        };
        let first = s.vaddr & !0xfff;
        for page in (first..s.vaddr + s.memsz).step_by(4096) {
            let frame = match space.translate(page) {
                Some(t) => t.phys & !0xfff,
                None => space.map_fresh(page, rights, pool)?,
            };
            // Copy the part of the file that falls into this page.
            let lo = page.max(s.vaddr);
            let hi = (page + 4096).min(s.vaddr + s.filesz);
            if lo < hi {
                let src = &image
                    [(s.offset + (lo - s.vaddr)) as usize..(s.offset + (hi - s.vaddr)) as usize];
                let dst = paging::phys_to_virt(frame + (lo - page)).ok_or(MapError::BadAddress)?;
                // SAFETY: `dst` is inside the frame just mapped for this
                // page, `src` inside the module; lengths agree.
                unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
            }
        }
    }
    for page in (abi::ROOT_STACK_TOP - abi::ROOT_STACK_SIZE..abi::ROOT_STACK_TOP).step_by(4096) {
        space.map_fresh(
            page,
            Rights {
                write: true,
                exec: false,
            },
            pool,
        )?;
    }
    space.map(
        abi::KIP_VADDR,
        kip_phys,
        Rights {
            write: false,
            exec: false,
        },
        pool,
    )?;
    let mut n = heapless::String::new();
    for c in name.chars().take(32) {
        let _ = n.push(c);
    }
    Ok((Task { name: n, space }, img.entry))
}

/// Makes `task` current and drops into ring 3 at `entry`.
pub fn run(task: Task, entry: u64) -> ! {
    let top = (&raw mut ROOT_KSTACK) as u64 + BOOT_STACK_SIZE as u64;
    let frame = (top - core::mem::size_of::<TrapFrame>() as u64) as *mut TrapFrame;
    let sel = crate::arch::gdt::selectors();
    // SAFETY: the frame lies at the top of the thread's own kernel stack.
    unsafe {
        frame.write(TrapFrame {
            rip: entry,
            cs: sel.user_code.0 as u64,
            rflags: 0x202,
            rsp: abi::ROOT_STACK_TOP,
            ss: sel.user_data.0 as u64,
            ..Default::default()
        })
    };
    cpu::set_kernel_stack(top);
    task.space.activate();
    *CURRENT.lock() = Some(task);
    // SAFETY: user selectors, canonical entry inside the loaded image, and
    // the task's space is live.
    unsafe { trap::return_to_user(frame) }
}

/// Stops the current user task for good and idles.
pub fn stop_current(why: &str) -> ! {
    // SAFETY: single CPU; the kernel runs with interrupts off, so whoever
    // held the lock is not coming back (it can only be a faulting path).
    unsafe { CURRENT.force_unlock() };
    if let Some(t) = CURRENT.lock().as_ref() {
        kprintln!("task {}: {why}", t.name);
    }
    kprintln!("no runnable task left; idling.");
    cpu::halt_forever()
}
