//! Checks a boot module's ELF image and lists what to map, without trusting
//! a single field of it.

use elf::abi::{EM_X86_64, ET_EXEC, PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;
use elf::ElfBytes;

pub const MAX_SEGMENTS: usize = 8;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    Parse,
    NotX86_64Executable,
    TooManySegments,
    /// A segment lies outside the user half, overlaps another, or reaches
    /// past the file.
    BadSegment,
    /// A segment is both writable and executable.
    WritableAndExecutable,
    EntryOutsideText,
}

#[derive(Clone, Debug)]
pub struct Image {
    pub entry: u64,
    pub segments: heapless::Vec<Segment, MAX_SEGMENTS>,
}

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
        let end = s.vaddr.checked_add(s.memsz).ok_or(ElfError::BadSegment)?;
        let fend = s.offset.checked_add(s.filesz).ok_or(ElfError::BadSegment)?;
        if s.filesz > s.memsz || end > user_end || s.vaddr < 4096 || fend > file.len() as u64 {
            return Err(ElfError::BadSegment);
        }
        if s.write && s.exec {
            return Err(ElfError::WritableAndExecutable);
        }
        // Segments may share a page only if neither overlaps the other's bytes.
        if segments.iter().any(|o| s.vaddr < o.vaddr + o.memsz && o.vaddr < end) {
            return Err(ElfError::BadSegment);
        }
        segments.push(s).map_err(|_| ElfError::TooManySegments)?;
    }
    let entry = elf.ehdr.e_entry;
    if !segments.iter().any(|s| s.exec && s.vaddr <= entry && entry < s.vaddr + s.memsz) {
        return Err(ElfError::EntryOutsideText);
    }
    Ok(Image { entry, segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 executable with the given program headers.
    fn elf(entry: u64, phdrs: &[(u32, u32, u64, u64, u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * phdrs.len() + 256];
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
        }
        b
    }

    const END: u64 = 0x8000_0000_0000;

    #[test]
    fn accepts_text_and_data() {
        let f = elf(0x40_0010, &[(PT_LOAD, 5, 0, 0x40_0000, 0x80, 0x80), (PT_LOAD, 6, 0x80, 0x40_1000, 0x10, 0x2000)]);
        let img = parse(&f, END).unwrap();
        assert_eq!(img.entry, 0x40_0010);
        assert_eq!(img.segments.len(), 2);
        assert_eq!(
            img.segments[1],
            Segment { vaddr: 0x40_1000, memsz: 0x2000, offset: 0x80, filesz: 0x10, write: true, exec: false }
        );
    }

    #[test]
    fn rejects_hostile_headers() {
        type Phdr = (u32, u32, u64, u64, u64, u64);
        let cases: [(u64, Vec<Phdr>, ElfError); 6] = [
            (0x40_0000, vec![(PT_LOAD, 7, 0, 0x40_0000, 0x10, 0x10)], ElfError::WritableAndExecutable),
            (0x40_0000, vec![(PT_LOAD, 5, 0, END - 0x10, 0x10, 0x20)], ElfError::BadSegment),
            (0x40_0000, vec![(PT_LOAD, 5, 0, u64::MAX - 4, 0x10, 0x10)], ElfError::BadSegment),
            (0x40_0000, vec![(PT_LOAD, 5, 0x10_0000, 0x40_0000, 0x10, 0x10)], ElfError::BadSegment),
            (0x40_0000, vec![(PT_LOAD, 5, 0, 0x40_0000, 0x20, 0x10)], ElfError::BadSegment),
            (0x50_0000, vec![(PT_LOAD, 5, 0, 0x40_0000, 0x10, 0x10)], ElfError::EntryOutsideText),
        ];
        for (entry, ph, want) in cases {
            assert_eq!(parse(&elf(entry, &ph), END).unwrap_err(), want, "{ph:x?}");
        }
        let overlap =
            elf(0x40_0000, &[(PT_LOAD, 5, 0, 0x40_0000, 0x10, 0x100), (PT_LOAD, 6, 0, 0x40_0080, 0x10, 0x10)]);
        assert_eq!(parse(&overlap, END).unwrap_err(), ElfError::BadSegment);
        assert_eq!(parse(b"not an elf", END).unwrap_err(), ElfError::Parse);
        let mut not_x86 = elf(0x40_0000, &[(PT_LOAD, 5, 0, 0x40_0000, 0x10, 0x10)]);
        not_x86[18] = 40;
        assert_eq!(parse(&not_x86, END).unwrap_err(), ElfError::NotX86_64Executable);
    }
}
