//! Ring-3 exceptions of every kind: what each instruction sequence the
//! guest runner executes (in this order, by index) must raise.
//!
//! `vectors` lists what is acceptable; [`NONE`] means "no exception" is
//! acceptable too (x87 errors are reported as #MF only with CR0.NE, and
//! #AC only with CR0.AM; the kernel sets neither; QEMU 7.2 TCG raises no
//! #XM for unmasked SSE exceptions). Page faults arrive as
//! exception messages because the fuzzing threads' pager refuses faults
//! outside their own image. Non-canonical stack accesses raise #SS on
//! hardware and #GP under some emulators.

/// "No exception" is acceptable.
pub const NONE: u8 = 0xff;

#[derive(Clone, Copy, Debug)]
pub struct Kind {
    pub name: &'static str,
    pub vectors: &'static [u8],
    /// The acceptable error codes (empty: any, e.g. page-fault bits).
    pub errors: &'static [u64],
}

const fn k(name: &'static str, vectors: &'static [u8], errors: &'static [u64]) -> Kind {
    Kind { name, vectors, errors }
}

impl Kind {
    pub fn admits(&self, vector: u64, error: u64) -> bool {
        self.vectors.iter().any(|&v| v as u64 == vector) && (self.errors.is_empty() || self.errors.contains(&error))
    }
}

/// `int n` through a gate ring 3 may not use: #GP with the IDT index as
/// the error code, `n << 3 | 2` (QEMU 7.2 TCG reports `n << 4 | 2`, the
/// byte offset of the 16-byte gate).
macro_rules! gate {
    ($n:expr) => {
        &[$n << 3 | 2, $n << 4 | 2]
    };
}

pub const DE: u8 = 0;
pub const DB: u8 = 1;
pub const BP: u8 = 3;
pub const OF: u8 = 4;
pub const UD: u8 = 6;
pub const SS: u8 = 12;
pub const GP: u8 = 13;
pub const PF: u8 = 14;
pub const MF: u8 = 16;
pub const AC: u8 = 17;
pub const XM: u8 = 19;

pub const KINDS: [Kind; 44] = [
    k("div by zero", &[DE], &[0]),
    k("idiv overflow", &[DE], &[0]),
    // QEMU 7.2 TCG decodes icebp (int1) as an invalid opcode.
    k("icebp", &[DB, UD], &[0]),
    k("int3", &[BP], &[0]),
    k("int 3", &[BP], &[0]),
    k("int 4", &[OF], &[0]),
    k("into", &[UD], &[0]),
    k("ud2", &[UD], &[0]),
    k("ud1", &[UD], &[0]),
    k("lock nop", &[UD], &[0]),
    k("vzeroupper without OSXSAVE", &[UD], &[0]),
    k("xsetbv", &[UD, GP], &[0]),
    k("push es", &[UD], &[0]),
    k("hlt", &[GP], &[0]),
    k("cli", &[GP], &[0]),
    k("in al, 0x80", &[GP], &[0]),
    k("out 0x80, al", &[GP], &[0]),
    k("mov rax, cr0", &[GP], &[0]),
    k("mov cr3, rax", &[GP], &[0]),
    k("rdmsr", &[GP], &[0]),
    k("wrmsr", &[GP], &[0]),
    k("lgdt", &[GP], &[0]),
    k("lidt", &[GP], &[0]),
    k("clts", &[GP], &[0]),
    k("invlpg", &[GP], &[0]),
    k("wbinvd", &[GP], &[0]),
    k("sysretq", &[GP], &[0]),
    k("swapgs", &[GP], &[0]),
    k("rdpmc", &[GP], &[0]),
    k("int 0x80", &[GP], gate!(0x80)),
    k("int 14", &[GP], gate!(14)),
    k("int 0x20", &[GP], gate!(0x20)),
    k("int 0xff", &[GP], gate!(0xff)),
    k("load from non-canonical", &[GP], &[0]),
    k("mov ss, kernel selector", &[GP], &[0x10]),
    // QEMU TCG with SMAP on pops the frame as a supervisor access: #PF
    // with error code 1 (present, read, supervisor) on the user's stack.
    k("iretq with a null frame", &[GP, PF], &[0, 1]),
    k("push with non-canonical rsp", &[SS, GP], &[0]),
    k("load from kernel half", &[PF], &[]),
    k("store to the KIP", &[PF], &[]),
    k("jump to the KIP", &[PF], &[]),
    k("store to own code", &[PF], &[]),
    k("x87 divide by zero unmasked", &[MF, NONE], &[]),
    k("SSE divide by zero unmasked", &[XM, NONE], &[0]),
    k("unaligned load with AC", &[AC, NONE], &[]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_vectors_are_exceptions() {
        for (i, a) in KINDS.iter().enumerate() {
            assert!(KINDS[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
            assert!(a.vectors.iter().all(|&v| v < 32 || v == NONE) && !a.vectors.is_empty());
            assert!(a.admits(a.vectors[0] as u64, a.errors.first().copied().unwrap_or(7)));
        }
    }
}
