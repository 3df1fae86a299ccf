//! Error codes returned by system calls.

/// Why a system call failed. The kernel returns `-(code)` in `rax`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Error {
    /// The syscall number is not defined.
    NoSuchCall = 1,
    /// An argument is out of its range.
    InvalidArgument = 2,
    /// A user pointer is not mapped, not user-accessible or not canonical.
    BadAddress = 3,
    /// The kernel ran out of the memory the call needed.
    OutOfMemory = 4,
    /// A thread id is unknown or stale.
    InvalidThread = 5,
    /// The caller lacks the privilege for this call.
    NoPermission = 6,
    /// An IPC timeout expired.
    Timeout = 7,
    /// The partner vanished or cancelled the IPC.
    Aborted = 8,
    /// A message or item does not fit the receiver's buffers.
    MessageOverflow = 9,
    /// A kernel table (threads, spaces) is full.
    NoResources = 10,
}

impl Error {
    /// All codes, in order.
    pub const ALL: [Error; 10] = [
        Error::NoSuchCall,
        Error::InvalidArgument,
        Error::BadAddress,
        Error::OutOfMemory,
        Error::InvalidThread,
        Error::NoPermission,
        Error::Timeout,
        Error::Aborted,
        Error::MessageOverflow,
        Error::NoResources,
    ];

    /// The raw `rax` value the kernel returns for this error.
    pub const fn encode(self) -> u64 {
        (self as u64).wrapping_neg()
    }

    /// Splits a raw `rax` value into success value or error (the success
    /// test inlines into every system call wrapper; the error lookup not).
    #[inline]
    pub fn decode(raw: u64) -> Result<u64, Error> {
        if (raw as i64) >= 0 {
            return Ok(raw);
        }
        Err(Self::from_code(raw.wrapping_neg()))
    }

    #[cold]
    #[inline(never)]
    fn from_code(code: u64) -> Error {
        // An unknown negative code cannot come from this kernel's ABI
        // version; report it as the most general error.
        Error::ALL.iter().copied().find(|e| *e as u64 == code).unwrap_or(Error::InvalidArgument)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        for e in Error::ALL {
            assert_eq!(Error::decode(e.encode()), Err(e));
        }
        assert_eq!(Error::decode(0), Ok(0));
        assert_eq!(Error::decode(42), Ok(42));
    }
}
