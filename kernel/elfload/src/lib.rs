//! The one ELF loader of the system. It checks a task image without
//! trusting a single field of it, lists what to map, and copies the
//! segments page by page into whatever memory the caller provides.
//!
//! The kernel loads sigma0 and the root task with it; the root task and the
//! user-level pagers load every other task with it. It allocates nothing and
//! knows nothing about page tables: [`load`] asks its caller for the 4 KiB
//! page behind each virtual page (a kernel pool frame, a frame from sigma0
//! seen through a pager's window, a test buffer on the host) and writes the
//! file's bytes and the zero fill there.
//!
//! Checks (each a distinct [`ElfError`]): a 64-bit little-endian x86_64
//! executable; at most [`MAX_SEGMENTS`] loadable segments; every segment
//! inside `[4096, user_end)` with `filesz <= memsz`, its file bytes inside
//! the file, its address congruent to its offset modulo the page size (and
//! its alignment a power of two), never both writable and executable, and
//! not overlapping another segment's bytes (two segments may share a page);
//! the entry point inside an executable segment.
#![cfg_attr(not(test), no_std)]

use elf::abi::{EM_X86_64, ET_EXEC, PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;
use elf::ElfBytes;

pub const MAX_SEGMENTS: usize = 8;
const PAGE: u64 = 4096;

/// One loadable segment: `memsz` bytes at `vaddr`, the first `filesz` of
/// them copied from `file[offset..]`, the rest zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub write: bool,
    pub exec: bool,
}

impl Segment {
    /// The first byte past the segment in memory.
    pub fn end(&self) -> u64 {
        self.vaddr + self.memsz
    }

    /// The page-aligned virtual pages the segment touches.
    pub fn pages(&self) -> impl Iterator<Item = u64> {
        ((self.vaddr & !(PAGE - 1))..self.end()).step_by(PAGE as usize)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file, or its headers are cut off or inconsistent.
    Parse,
    /// An ELF file, but not a 64-bit x86_64 executable.
    NotX86_64Executable,
    TooManySegments,
    /// A segment's file bytes reach past the end of the file.
    Truncated,
    /// A segment lies (partly) outside `[4096, user_end)`: in the kernel
    /// half, in the null page, or wrapping around.
    OutsideUser,
    /// A segment's address and file offset disagree modulo the page size,
    /// or its alignment is not a power of two.
    Misaligned,
    /// A segment has more file bytes than memory bytes.
    FileLargerThanMemory,
    /// Two segments overlap.
    Overlap,
    /// A segment, or a page two segments share, is both writable and
    /// executable.
    WritableAndExecutable,
    EntryOutsideText,
}

#[derive(Clone, Debug)]
pub struct Image {
    pub entry: u64,
    pub segments: heapless::Vec<Segment, MAX_SEGMENTS>,
}

impl Image {
    /// The first page past the highest segment (where a heap may start).
    pub fn end(&self) -> u64 {
        self.segments.iter().map(|s| s.end()).max().unwrap_or(0).next_multiple_of(PAGE)
    }

    /// Every page the image touches, with the rights of the segments on it
    /// (write or exec if any segment on the page has it).
    pub fn pages(&self) -> impl Iterator<Item = (u64, Rights)> + '_ {
        self.segments.iter().enumerate().flat_map(move |(i, s)| {
            s.pages()
                // A page shared with an earlier segment was listed already.
                .filter(move |&p| !self.segments[..i].iter().any(|o| o.pages().any(|q| q == p)))
                .map(move |p| (p, self.rights_of(p)))
        })
    }

    fn rights_of(&self, page: u64) -> Rights {
        let on = |s: &&Segment| s.pages().any(|q| q == page);
        Rights {
            write: self.segments.iter().filter(on).any(|s| s.write),
            exec: self.segments.iter().filter(on).any(|s| s.exec),
        }
    }
}

/// Rights of a loaded page (always readable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rights {
    pub write: bool,
    pub exec: bool,
}

/// Checks `file` and lists its loadable segments; `user_end` is the first
/// address no segment may reach.
pub fn parse(file: &[u8], user_end: u64) -> Result<Image, ElfError> {
    let elf = ElfBytes::<LittleEndian>::minimal_parse(file).map_err(|_| ElfError::Parse)?;
    if elf.ehdr.e_machine != EM_X86_64 || elf.ehdr.e_type != ET_EXEC {
        return Err(ElfError::NotX86_64Executable);
    }
    let mut segments: heapless::Vec<Segment, MAX_SEGMENTS> = heapless::Vec::new();
    for ph in elf.segments().ok_or(ElfError::Parse)?.iter().filter(|p| p.p_type == PT_LOAD) {
        let s = Segment {
            vaddr: ph.p_vaddr,
            memsz: ph.p_memsz,
            offset: ph.p_offset,
            filesz: ph.p_filesz,
            write: ph.p_flags & PF_W != 0,
            exec: ph.p_flags & PF_X != 0,
        };
        let end = s.vaddr.checked_add(s.memsz).ok_or(ElfError::OutsideUser)?;
        if end > user_end || s.vaddr < PAGE {
            return Err(ElfError::OutsideUser);
        }
        let fend = s.offset.checked_add(s.filesz).ok_or(ElfError::Truncated)?;
        if fend > file.len() as u64 {
            return Err(ElfError::Truncated);
        }
        if s.filesz > s.memsz {
            return Err(ElfError::FileLargerThanMemory);
        }
        if (ph.p_align != 0 && !ph.p_align.is_power_of_two()) || s.vaddr % PAGE != s.offset % PAGE {
            return Err(ElfError::Misaligned);
        }
        if s.write && s.exec {
            return Err(ElfError::WritableAndExecutable);
        }
        // Segments may share a page only if neither overlaps the other's bytes.
        if segments.iter().any(|o| s.vaddr < o.end() && o.vaddr < end) {
            return Err(ElfError::Overlap);
        }
        // Nor may a page end up writable and executable through two
        // segments that share it.
        let shares = |o: &Segment| o.pages().any(|p| s.pages().any(|q| q == p));
        if segments.iter().any(|o| shares(o) && ((o.write && s.exec) || (o.exec && s.write))) {
            return Err(ElfError::WritableAndExecutable);
        }
        segments.push(s).map_err(|_| ElfError::TooManySegments)?;
    }
    let entry = elf.ehdr.e_entry;
    if !segments.iter().any(|s| s.exec && s.vaddr <= entry && entry < s.end()) {
        return Err(ElfError::EntryOutsideText);
    }
    Ok(Image { entry, segments })
}

/// Copies a parsed image into memory. For every distinct page of it,
/// `page(vaddr, rights, fill)` is called once, with the union of the rights
/// of the segments on the page; the caller finds or allocates the 4 KiB page
/// that backs `vaddr` (zeroed, as fresh frames are) and calls `fill` on it,
/// which writes the segments' file bytes and zero fill there.
pub fn load<E>(
    file: &[u8],
    img: &Image,
    mut page: impl FnMut(u64, Rights, &dyn Fn(&mut [u8; PAGE as usize])) -> Result<(), E>,
) -> Result<(), E> {
    for (p, rights) in img.pages() {
        let fill = |dst: &mut [u8; PAGE as usize]| {
            for s in img.segments.iter().filter(|s| s.pages().any(|q| q == p)) {
                // The segment's bytes in this page: file bytes, then zeros.
                let lo = p.max(s.vaddr);
                let hi = (p + PAGE).min(s.end());
                let fhi = (p + PAGE).min(s.vaddr + s.filesz).max(lo);
                let (flo, fto) = ((lo - p) as usize, (fhi - p) as usize);
                if fto > flo {
                    let src = (s.offset + (lo - s.vaddr)) as usize;
                    dst[flo..fto].copy_from_slice(&file[src..src + (fto - flo)]);
                }
                dst[fto..(hi - p) as usize].fill(0);
            }
        };
        page(p, rights, &fill)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Phdr = (u32, u32, u64, u64, u64, u64);

    /// A minimal ELF64 executable with the given program headers
    /// (type, flags, offset, vaddr, filesz, memsz) and `body` after them.
    fn elf(entry: u64, phdrs: &[Phdr], body: usize) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * phdrs.len() + body];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // 64-bit
        b[5] = 1; // little endian
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, &(ty, flags, off, vaddr, filesz, memsz)) in phdrs.iter().enumerate() {
            let p = 64 + 56 * i;
            b[p..p + 4].copy_from_slice(&ty.to_le_bytes());
            b[p + 4..p + 8].copy_from_slice(&flags.to_le_bytes());
            b[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            b[p + 16..p + 24].copy_from_slice(&vaddr.to_le_bytes());
            b[p + 32..p + 40].copy_from_slice(&filesz.to_le_bytes());
            b[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
            b[p + 48..p + 56].copy_from_slice(&4096u64.to_le_bytes());
        }
        b
    }

    const END: u64 = 0x8000_0000_0000;

    #[test]
    fn accepts_text_and_data() {
        let f =
            elf(0x40_0010, &[(PT_LOAD, 5, 0, 0x40_0000, 0x80, 0x80), (PT_LOAD, 6, 0x80, 0x40_1080, 0x10, 0x2000)], 256);
        let img = parse(&f, END).unwrap();
        assert_eq!(img.entry, 0x40_0010);
        assert_eq!(img.segments.len(), 2);
        assert_eq!(
            img.segments[1],
            Segment { vaddr: 0x40_1080, memsz: 0x2000, offset: 0x80, filesz: 0x10, write: true, exec: false }
        );
        assert_eq!(img.end(), 0x40_4000);
    }

    #[test]
    fn rejects_hostile_headers() {
        let cases: [(u64, Vec<Phdr>, ElfError); 9] = [
            (0x40_0000, vec![(PT_LOAD, 7, 0, 0x40_0000, 0x10, 0x10)], ElfError::WritableAndExecutable),
            // Kernel half, wrapping, null page.
            (0x40_0000, vec![(PT_LOAD, 5, 0, END - 0x10, 0x10, 0x20)], ElfError::OutsideUser),
            (0x40_0000, vec![(PT_LOAD, 5, 0, 0xffff_ffff_8000_0000, 0x10, 0x10)], ElfError::OutsideUser),
            (0x40_0000, vec![(PT_LOAD, 5, 0, u64::MAX - 4, 0x10, 0x10)], ElfError::OutsideUser),
            (0x40_0000, vec![(PT_LOAD, 5, 0, 0x0, 0x10, 0x10)], ElfError::OutsideUser),
            // Truncated: file bytes past the end of the file.
            (0x40_0000, vec![(PT_LOAD, 5, 0x10_0000, 0x40_0000, 0x10, 0x10)], ElfError::Truncated),
            (0x40_0000, vec![(PT_LOAD, 5, 0, 0x40_0000, 0x20, 0x10)], ElfError::FileLargerThanMemory),
            // Misaligned: address and offset disagree within the page.
            (0x40_0010, vec![(PT_LOAD, 5, 0x8, 0x40_0000, 0x10, 0x10)], ElfError::Misaligned),
            (0x50_0000, vec![(PT_LOAD, 5, 0, 0x40_0000, 0x10, 0x10)], ElfError::EntryOutsideText),
        ];
        for (entry, ph, want) in cases {
            assert_eq!(parse(&elf(entry, &ph, 256), END).unwrap_err(), want, "{ph:x?}");
        }
        let overlap =
            elf(0x40_0000, &[(PT_LOAD, 5, 0, 0x40_0000, 0x10, 0x100), (PT_LOAD, 6, 0x80, 0x40_0080, 0x10, 0x10)], 256);
        assert_eq!(parse(&overlap, END).unwrap_err(), ElfError::Overlap);
        let wx_page =
            elf(0x40_0000, &[(PT_LOAD, 5, 0, 0x40_0000, 0x10, 0x10), (PT_LOAD, 6, 0x80, 0x40_0080, 0x10, 0x10)], 256);
        assert_eq!(parse(&wx_page, END).unwrap_err(), ElfError::WritableAndExecutable);
        assert_eq!(parse(b"not an elf", END).unwrap_err(), ElfError::Parse);
        // Headers cut off: the file ends inside the program headers.
        let whole = elf(0x40_0000, &[(PT_LOAD, 5, 0, 0x40_0000, 0x10, 0x10)], 0);
        assert_eq!(parse(&whole[..80], END).unwrap_err(), ElfError::Parse);
        let mut not_x86 = elf(0x40_0000, &[(PT_LOAD, 5, 0, 0x40_0000, 0x10, 0x10)], 256);
        not_x86[18] = 40;
        assert_eq!(parse(&not_x86, END).unwrap_err(), ElfError::NotX86_64Executable);
        let many: Vec<Phdr> = (0..9).map(|i| (PT_LOAD, 4, 0, 0x40_0000 + i * 0x1000, 0, 0x10)).collect();
        let mut many = many;
        many[0].1 = 5;
        assert_eq!(parse(&elf(0x40_0000, &many, 256), END).unwrap_err(), ElfError::TooManySegments);
    }

    /// Loads into a map of pages, as a pager would into fresh frames.
    fn load_to_map(f: &[u8], img: &Image) -> BTreeMap<u64, (Rights, Box<[u8; 4096]>)> {
        let mut pages: BTreeMap<u64, (Rights, Box<[u8; 4096]>)> = BTreeMap::new();
        let mut order = Vec::new();
        load::<()>(f, img, |v, r, fill| {
            order.push(v);
            let e = pages.entry(v).or_insert_with(|| (r, Box::new([0u8; 4096])));
            fill(&mut e.1);
            Ok(())
        })
        .unwrap();
        let mut dedup = order.clone();
        dedup.dedup();
        assert_eq!(order, dedup, "each page is asked for once");
        pages
    }

    #[test]
    fn load_copies_file_bytes_and_zero_fills_bss_with_shared_pages() {
        // Text 0x40_0000..0x40_0100 from file 0x100; data shares no page;
        // rodata shares the text's page (bytes 0x800.. of the page).
        let ph = [
            (PT_LOAD, 5, 0x100, 0x40_0100, 0x100, 0x100),
            (PT_LOAD, 4, 0x800, 0x40_0800, 0x10, 0x10),
            (PT_LOAD, 6, 0x900, 0x40_1900, 0x20, 0x1800),
        ];
        let mut f = elf(0x40_0100, &ph, 0x1000);
        for (i, b) in f.iter_mut().enumerate().skip(0x100) {
            *b = (i % 251) as u8 + 1;
        }
        let img = parse(&f, END).unwrap();
        let pages = load_to_map(&f, &img);
        assert_eq!(pages.keys().copied().collect::<Vec<_>>(), vec![0x40_0000, 0x40_1000, 0x40_2000, 0x40_3000]);
        let (r0, p0) = &pages[&0x40_0000];
        assert_eq!(*r0, Rights { write: false, exec: true });
        assert_eq!(p0[0x100], f[0x100]);
        assert_eq!(p0[0x1ff], f[0x1ff]);
        assert_eq!(p0[0x80f], f[0x80f]);
        assert_eq!(p0[0x200], 0, "between segments stays zero");
        let (r1, p1) = &pages[&0x40_1000];
        assert_eq!(*r1, Rights { write: true, exec: false });
        assert_eq!(p1[0x900], f[0x900]);
        assert_eq!(p1[0x91f], f[0x91f]);
        assert_eq!(p1[0x920], 0, "bss is zero");
    }

    proptest! {
        /// Random segment tables either fail a check or load so that every
        /// byte of every segment reads back as the file (or zero) says.
        #[test]
        fn loaded_bytes_match_the_file(
            segs in proptest::collection::vec((0u64..64, 0u64..0x3000, 0u64..0x3000, any::<bool>()), 1..5),
            body in 0usize..0x4000,
        ) {
            let mut ph: Vec<Phdr> = Vec::new();
            for (i, &(page, filesz, extra, write)) in segs.iter().enumerate() {
                let vaddr = 0x40_0100 + page * 0x1000 + (i as u64 * 0x10);
                let flags = if i == 0 { 5 } else if write { 6 } else { 4 };
                ph.push((PT_LOAD, flags, 0x100 + i as u64 * 0x10, vaddr, filesz, filesz + extra));
            }
            let entry = ph[0].3;
            let mut f = elf(entry, &ph, body);
            for (i, b) in f.iter_mut().enumerate() {
                *b = (i % 253) as u8 | 1;
            }
            let Ok(img) = parse(&f, END) else { return Ok(()) };
            let pages = load_to_map(&f, &img);
            for s in &img.segments {
                for v in s.vaddr..s.end() {
                    let want = if v < s.vaddr + s.filesz { f[(s.offset + v - s.vaddr) as usize] } else { 0 };
                    prop_assert_eq!(pages[&(v & !0xfff)].1[(v & 0xfff) as usize], want);
                }
            }
        }
    }
}
