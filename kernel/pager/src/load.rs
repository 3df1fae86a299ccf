//! Loading a client eagerly: every page of its image, its stack and its
//! heap gets a frame before it starts (the root task for the tasks it
//! pages, the RT pager for its clients; the TS pager loads only the image
//! this way and demand-pages the rest).

use crate::table::Rights;
use core::ops::Range;

/// Stack and heap pages: readable and writable, never executable.
pub const DATA: Rights = Rights { write: true, exec: false };

/// Asks `back(vaddr, rights, fill)` once for every page of image `img`
/// (of ELF `file`) and of the `extra` ranges (stack, heap; rounded out to
/// pages); `back` finds a zeroed frame for the page, records it and calls
/// `fill` on it (for extra pages `fill` writes nothing). Returns the number
/// of pages.
pub fn eager<E>(
    file: &[u8],
    img: &elfload::Image,
    extra: &[Range<u64>],
    mut back: impl FnMut(u64, Rights, &dyn Fn(&mut [u8; 4096])) -> Result<(), E>,
) -> Result<u64, E> {
    let mut pages = 0u64;
    elfload::load(file, img, |v, r, fill| {
        pages += 1;
        back(v, r, fill)
    })?;
    for r in extra {
        for v in ((r.start & !0xfff)..r.end).step_by(4096) {
            back(v, DATA, &|_| {})?;
            pages += 1;
        }
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A one-segment ELF image: `text` bytes at 0x40_0000 (R+X).
    fn elf(text: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 0x1000 + text.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        (b[4], b[5], b[6]) = (2, 1, 1);
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = &mut b[64..120];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes());
        ph[4..8].copy_from_slice(&5u32.to_le_bytes());
        ph[8..16].copy_from_slice(&0x1000u64.to_le_bytes());
        ph[16..24].copy_from_slice(&0x40_0000u64.to_le_bytes());
        ph[32..40].copy_from_slice(&(text.len() as u64).to_le_bytes());
        ph[40..48].copy_from_slice(&(text.len() as u64).to_le_bytes());
        ph[48..56].copy_from_slice(&4096u64.to_le_bytes());
        b[0x1000..].copy_from_slice(text);
        b
    }

    #[test]
    fn every_page_once_with_its_rights_and_bytes() {
        let text: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8 + 1).collect();
        let f = elf(&text);
        let img = elfload::parse(&f, 0x8000_0000).unwrap();
        let mut pages: BTreeMap<u64, (Rights, Box<[u8; 4096]>)> = BTreeMap::new();
        let n = eager::<()>(&f, &img, &[0x9000_0000..0x9000_2000, 0x7000_0800..0x7000_1001], |v, r, fill| {
            let mut p = Box::new([0u8; 4096]);
            fill(&mut p);
            assert!(pages.insert(v, (r, p)).is_none(), "page {v:#x} asked twice");
            Ok(())
        })
        .unwrap();
        let want = [0x40_0000, 0x40_1000, 0x7000_0000, 0x7000_1000, 0x9000_0000, 0x9000_1000];
        assert_eq!(pages.keys().copied().collect::<Vec<_>>(), want);
        assert_eq!(n, 6);
        assert_eq!(pages[&0x40_0000].0, Rights { write: false, exec: true });
        assert_eq!(pages[&0x40_1000].1[..5000 - 4096], text[4096..]);
        assert_eq!(pages[&0x9000_0000].0, DATA);
        assert!(pages[&0x9000_1000].1.iter().all(|&b| b == 0));
    }

    #[test]
    fn the_first_refusal_stops_the_load() {
        let f = elf(&[0x90; 16]);
        let img = elfload::parse(&f, 0x8000_0000).unwrap();
        let mut asked = 0;
        let heap = 0x9000_0000..0x9001_0000;
        let r = eager(&f, &img, core::slice::from_ref(&heap), |_, _, _| {
            asked += 1;
            if asked == 3 {
                Err("no frame")
            } else {
                Ok(())
            }
        });
        assert_eq!((r, asked), (Err("no frame"), 3));
    }
}
