//! Magic marker instructions that bracket measured jobs.
//!
//! A marker is the 8-byte multi-byte NOP `nopl 0x4c4a000N(%rax,%rax,1)` (N = the marker kind)
//! (`0F 1F 84 00` + 32-bit displacement). Real CPUs execute it as a NOP, so
//! the same binaries run unchanged on hardware; the cache-model QEMU plugin
//! recognises the displacement when it translates a block and opens or closes
//! a job window. No I/O ports are involved.

/// The opcode bytes that precede the displacement.
pub const PREFIX: [u8; 4] = [0x0f, 0x1f, 0x84, 0x00];
/// High 16 bits of every marker displacement (`"JL"` little-endian).
pub const MAGIC_HI: u32 = 0x4c4a_0000;

/// What a marker tells the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Marker {
    /// A measured job starts (after the guest's own start timestamp).
    JobBegin = 1,
    /// The measured job ends (before the guest's own end timestamp).
    JobEnd = 2,
}

impl Marker {
    /// The 32-bit displacement that encodes this marker.
    pub const fn displacement(self) -> u32 {
        MAGIC_HI | self as u32
    }

    /// The full 8-byte instruction.
    pub const fn bytes(self) -> [u8; 8] {
        let d = self.displacement().to_le_bytes();
        [PREFIX[0], PREFIX[1], PREFIX[2], PREFIX[3], d[0], d[1], d[2], d[3]]
    }

    /// Recognises a marker from the 8 bytes of an instruction.
    pub fn decode(insn: &[u8]) -> Option<Marker> {
        if insn.len() < 8 || insn[..4] != PREFIX {
            return None;
        }
        let d = u32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
        match d {
            x if x == Marker::JobBegin.displacement() => Some(Marker::JobBegin),
            x if x == Marker::JobEnd.displacement() => Some(Marker::JobEnd),
            _ => None,
        }
    }
}

/// The `JobBegin` marker as an assembler line, for code that must place it
/// inside its own `asm!` block (so no compiler-generated access slips into
/// the job window).
#[macro_export]
macro_rules! job_begin_asm {
    () => {
        ".byte 0x0f, 0x1f, 0x84, 0x00, 0x01, 0x00, 0x4a, 0x4c"
    };
}

/// The `JobEnd` marker as an assembler line (see [`job_begin_asm!`]).
#[macro_export]
macro_rules! job_end_asm {
    () => {
        ".byte 0x0f, 0x1f, 0x84, 0x00, 0x02, 0x00, 0x4a, 0x4c"
    };
}

/// Emits a marker instruction at this point of the program.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn emit(m: Marker) {
    // SAFETY: both encodings are architectural NOPs (`nopl disp32(%rax,%rax,1)`);
    // they read no memory, write nothing and leave flags alone.
    unsafe {
        match m {
            Marker::JobBegin => {
                core::arch::asm!(job_begin_asm!(), options(nomem, nostack, preserves_flags))
            }
            Marker::JobEnd => {
                core::arch::asm!(job_end_asm!(), options(nomem, nostack, preserves_flags))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip_and_match_the_asm_bytes() {
        assert_eq!(Marker::JobBegin.bytes(), [0x0f, 0x1f, 0x84, 0x00, 0x01, 0x00, 0x4a, 0x4c]);
        assert_eq!(Marker::JobEnd.bytes(), [0x0f, 0x1f, 0x84, 0x00, 0x02, 0x00, 0x4a, 0x4c]);
        for m in [Marker::JobBegin, Marker::JobEnd] {
            assert_eq!(Marker::decode(&m.bytes()), Some(m));
        }
        assert_eq!(Marker::decode(&[0x0f, 0x1f, 0x84, 0x00, 0, 0, 0, 0]), None);
        assert_eq!(Marker::decode(&[0x90; 8]), None);
        // The assembler strings spell the same bytes.
        let parse = |s: &str| -> Vec<u8> {
            s.trim_start_matches(".byte ").split(", ").map(|b| u8::from_str_radix(&b[2..], 16).unwrap()).collect()
        };
        assert_eq!(parse(job_begin_asm!()), Marker::JobBegin.bytes());
        assert_eq!(parse(job_end_asm!()), Marker::JobEnd.bytes());
    }
}
