//! Multiboot (version 1) information, read without trusting it.
//!
//! The boot loader leaves a structure in physical memory; the kernel reads it
//! through a [`PhysRead`] so that the same parser runs on the host against a
//! byte buffer in tests. Every length and count is bounded before use.

/// Value of `eax` at entry when a Multiboot loader started us.
pub const BOOT_MAGIC: u32 = 0x2BAD_B002;

const FLAG_MEM: u32 = 1 << 0;
const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MODS: u32 = 1 << 3;
const FLAG_MMAP: u32 = 1 << 6;
const FLAG_LOADER_NAME: u32 = 1 << 9;

/// Upper bounds so that a corrupt structure cannot make us loop for long.
pub const MAX_MMAP_ENTRIES: usize = 128;
pub const MAX_MODS: usize = 16;
const MAX_STRING: usize = 256;

/// Reads physical memory. The kernel implements it on its direct map; tests
/// on a buffer.
pub trait PhysRead {
    /// Copies `buf.len()` bytes from physical address `addr`; `false` if the
    /// range is not readable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;

    fn u32_at(&self, addr: u64) -> Option<u32> {
        let mut b = [0; 4];
        self.read(addr, &mut b).then(|| u32::from_le_bytes(b))
    }

    fn u64_at(&self, addr: u64) -> Option<u64> {
        let mut b = [0; 8];
        self.read(addr, &mut b).then(|| u64::from_le_bytes(b))
    }
}

/// One entry of the firmware memory map (`type` 1 is usable RAM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmapEntry {
    pub base: u64,
    pub len: u64,
    pub kind: u32,
}

/// One boot module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModEntry {
    pub start: u64,
    pub end: u64,
    /// Physical address of the module's NUL-terminated command line (0: none).
    pub cmdline: u64,
}

/// Why the Multiboot information could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MbError {
    /// `eax` did not hold the Multiboot magic.
    BadMagic(u32),
    /// The info structure itself is not readable.
    Unreadable,
    /// Neither a memory map nor the basic memory fields are present.
    NoMemoryInfo,
}

/// What we take from the Multiboot information.
#[derive(Clone, Debug, Default)]
pub struct BootInfo {
    pub mmap: heapless::Vec<MmapEntry, MAX_MMAP_ENTRIES>,
    pub mods: heapless::Vec<ModEntry, MAX_MODS>,
    pub cmdline: heapless::String<MAX_STRING>,
    pub loader_name: heapless::String<64>,
    /// Physical range of the info structure and the tables it points to,
    /// so that the frame allocator keeps off them.
    pub info_start: u64,
    pub info_end: u64,
}

fn read_cstr<const N: usize>(mem: &dyn PhysRead, addr: u64, out: &mut heapless::String<N>) {
    let mut byte = [0u8; 1];
    for i in 0..N.min(MAX_STRING) as u64 {
        if !mem.read(addr + i, &mut byte) || byte[0] == 0 {
            break;
        }
        let c = if byte[0].is_ascii() && !byte[0].is_ascii_control() { byte[0] as char } else { '?' };
        if out.push(c).is_err() {
            break;
        }
    }
}

/// Parses the Multiboot information at physical address `info`.
pub fn parse(magic: u32, info: u64, mem: &dyn PhysRead) -> Result<BootInfo, MbError> {
    if magic != BOOT_MAGIC {
        return Err(MbError::BadMagic(magic));
    }
    let flags = mem.u32_at(info).ok_or(MbError::Unreadable)?;
    let mut bi = BootInfo { info_start: info, info_end: info + 120, ..Default::default() };
    let extend = |bi: &mut BootInfo, start: u64, len: u64| {
        bi.info_start = bi.info_start.min(start);
        bi.info_end = bi.info_end.max(start.saturating_add(len));
    };

    if flags & FLAG_MMAP != 0 {
        let len = mem.u32_at(info + 44).ok_or(MbError::Unreadable)? as u64;
        let addr = mem.u32_at(info + 48).ok_or(MbError::Unreadable)? as u64;
        extend(&mut bi, addr, len);
        let mut off = 0u64;
        while off + 24 <= len && bi.mmap.len() < MAX_MMAP_ENTRIES {
            // Each entry: u32 size (not counting itself), u64 base, u64 len, u32 type.
            let (Some(size), Some(base), Some(elen), Some(kind)) = (
                mem.u32_at(addr + off),
                mem.u64_at(addr + off + 4),
                mem.u64_at(addr + off + 12),
                mem.u32_at(addr + off + 20),
            ) else {
                break;
            };
            if size < 20 {
                break;
            }
            let _ = bi.mmap.push(MmapEntry { base, len: elen, kind });
            off += size as u64 + 4;
        }
    }
    if bi.mmap.is_empty() {
        if flags & FLAG_MEM == 0 {
            return Err(MbError::NoMemoryInfo);
        }
        let lower = mem.u32_at(info + 4).ok_or(MbError::Unreadable)? as u64;
        let upper = mem.u32_at(info + 8).ok_or(MbError::Unreadable)? as u64;
        let _ = bi.mmap.push(MmapEntry { base: 0, len: lower * 1024, kind: 1 });
        let _ = bi.mmap.push(MmapEntry { base: 0x10_0000, len: upper * 1024, kind: 1 });
    }
    if flags & FLAG_CMDLINE != 0 {
        let addr = mem.u32_at(info + 16).ok_or(MbError::Unreadable)? as u64;
        read_cstr(mem, addr, &mut bi.cmdline);
    }
    if flags & FLAG_LOADER_NAME != 0 {
        let addr = mem.u32_at(info + 64).ok_or(MbError::Unreadable)? as u64;
        read_cstr(mem, addr, &mut bi.loader_name);
    }
    if flags & FLAG_MODS != 0 {
        let count = mem.u32_at(info + 20).ok_or(MbError::Unreadable)? as u64;
        let addr = mem.u32_at(info + 24).ok_or(MbError::Unreadable)? as u64;
        extend(&mut bi, addr, count.min(MAX_MODS as u64) * 16);
        for i in 0..count.min(MAX_MODS as u64) {
            let e = addr + i * 16;
            let (Some(start), Some(end), Some(cmdline)) = (mem.u32_at(e), mem.u32_at(e + 4), mem.u32_at(e + 8)) else {
                break;
            };
            if end < start {
                continue;
            }
            let _ = bi.mods.push(ModEntry { start: start as u64, end: end as u64, cmdline: cmdline as u64 });
        }
    }
    Ok(bi)
}

/// The value of `key=value` in a kernel command line.
pub fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split(' ').find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Buf(Vec<u8>);
    impl PhysRead for Buf {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let a = addr as usize;
            match self.0.get(a..a + buf.len()) {
                Some(s) => {
                    buf.copy_from_slice(s);
                    true
                }
                None => false,
            }
        }
    }

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// A Multiboot info at 0x100 with a two-entry mmap at 0x200, one module
    /// table at 0x300, strings at 0x400.
    fn sample() -> Buf {
        let mut b = vec![0u8; 0x1000];
        put32(&mut b, 0x100, FLAG_MEM | FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP | FLAG_LOADER_NAME);
        put32(&mut b, 0x100 + 16, 0x400);
        put32(&mut b, 0x100 + 20, 1);
        put32(&mut b, 0x100 + 24, 0x300);
        put32(&mut b, 0x100 + 44, 48);
        put32(&mut b, 0x100 + 48, 0x200);
        put32(&mut b, 0x100 + 64, 0x440);
        for (i, (base, len, kind)) in [(0u64, 0x9fc00u64, 1u32), (0x100000, 0x7ee0000, 1)].iter().enumerate() {
            let e = 0x200 + i * 24;
            put32(&mut b, e, 20);
            put64(&mut b, e + 4, *base);
            put64(&mut b, e + 12, *len);
            put32(&mut b, e + 20, *kind);
        }
        put32(&mut b, 0x300, 0x20_0000);
        put32(&mut b, 0x304, 0x20_1234);
        put32(&mut b, 0x308, 0x480);
        b[0x400..0x40b].copy_from_slice(b"test=all x\0");
        b[0x440..0x44a].copy_from_slice(b"GRUB 2.06\0");
        Buf(b)
    }

    #[test]
    fn parses_mmap_modules_and_strings() {
        let bi = parse(BOOT_MAGIC, 0x100, &sample()).unwrap();
        assert_eq!(bi.mmap.len(), 2);
        assert_eq!(bi.mmap[1], MmapEntry { base: 0x100000, len: 0x7ee0000, kind: 1 });
        assert_eq!(bi.mods[0], ModEntry { start: 0x20_0000, end: 0x20_1234, cmdline: 0x480 });
        assert_eq!(bi.cmdline.as_str(), "test=all x");
        assert_eq!(bi.loader_name.as_str(), "GRUB 2.06");
        assert!(bi.info_start <= 0x100 && bi.info_end >= 0x310);
        assert_eq!(cmdline_value(&bi.cmdline, "test"), Some("all"));
        assert_eq!(cmdline_value(&bi.cmdline, "tes"), None);
    }

    #[test]
    fn rejects_bad_magic_and_survives_garbage() {
        assert_eq!(parse(0x1234, 0x100, &sample()).unwrap_err(), MbError::BadMagic(0x1234));
        assert_eq!(parse(BOOT_MAGIC, 0x5000, &sample()).unwrap_err(), MbError::Unreadable);
        // A mmap length pointing past the buffer and a huge module count.
        let mut s = sample();
        put32(&mut s.0, 0x100 + 44, 0xffff_ff00);
        put32(&mut s.0, 0x100 + 20, 0xffff_ffff);
        let bi = parse(BOOT_MAGIC, 0x100, &s).unwrap();
        assert!(bi.mmap.len() <= MAX_MMAP_ENTRIES && bi.mods.len() <= MAX_MODS);
    }

    #[test]
    fn falls_back_to_basic_memory_fields() {
        let mut s = sample();
        put32(&mut s.0, 0x100, FLAG_MEM);
        put32(&mut s.0, 0x104, 639);
        put32(&mut s.0, 0x108, 130048);
        let bi = parse(BOOT_MAGIC, 0x100, &s).unwrap();
        assert_eq!(bi.mmap[1], MmapEntry { base: 0x100000, len: 130048 * 1024, kind: 1 });
        put32(&mut s.0, 0x100, 0);
        assert_eq!(parse(BOOT_MAGIC, 0x100, &s).unwrap_err(), MbError::NoMemoryInfo);
    }
}
