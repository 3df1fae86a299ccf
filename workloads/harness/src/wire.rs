//! Job records between harness instances: every RT task measures its own
//! jobs, and the first RT task of the description (the leader) fetches the
//! others' records over IPC after the run and writes them all as one run
//! (one `record::Writer`, one header, one trailer). A record travels as
//! [`JOB_WORDS`] message words; [`PER_MESSAGE`] fit one message.

use record::{Counter, Job};

/// Label of the leader's request for records: MR1 = the first job wanted.
/// The reply (label 0) carries up to [`PER_MESSAGE`] records; none means
/// the task has no more, and it ends after that reply.
pub const FETCH: u64 = 0x4a0b;

/// Words of one record.
pub const JOB_WORDS: usize = 9;
/// Records in one message (63 message registers).
pub const PER_MESSAGE: usize = (abi::ipc::MAX_MRS - 1) / JOB_WORDS;

/// The words of `j` (its task index is the sender's, known to the leader).
pub fn encode(j: &Job) -> [u64; JOB_WORDS] {
    let mut avail = 0u64;
    let mut w = [0u64; JOB_WORDS];
    for (i, c) in Counter::ALL.into_iter().enumerate() {
        if let Some(v) = j.pmc.get(c) {
            avail |= 1 << i;
            w[5 + i] = v;
        }
    }
    w[0] = j.job as u64;
    w[1] = j.release;
    w[2] = j.start;
    w[3] = j.end;
    w[4] = j.preemptions as u64 | (j.deadline_miss as u64) << 32 | avail << 40;
    w
}

/// The record of task `task` that [`encode`] wrote.
pub fn decode(task: u16, w: &[u64; JOB_WORDS]) -> Job {
    let mut j = Job {
        task,
        job: w[0] as u32,
        release: w[1],
        start: w[2],
        end: w[3],
        preemptions: w[4] as u32,
        deadline_miss: (w[4] >> 32) & 1 != 0,
        ..Job::default()
    };
    for (i, c) in Counter::ALL.into_iter().enumerate() {
        j.pmc.set(c, ((w[4] >> (40 + i)) & 1 != 0).then_some(w[5 + i]));
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    prop_compose! {
        fn job()(job in any::<u32>(), release in any::<u64>(), start in any::<u64>(), end in any::<u64>(),
                 preemptions in any::<u32>(), miss in any::<bool>(),
                 pmc in proptest::array::uniform4(proptest::option::of(any::<u64>()))) -> Job {
            let mut j = Job { task: 3, job, release, start, end, preemptions, deadline_miss: miss, ..Job::default() };
            for (c, v) in Counter::ALL.into_iter().zip(pmc) {
                j.pmc.set(c, v);
            }
            j
        }
    }

    proptest! {
        #[test]
        fn records_survive_the_trip(j in job()) {
            prop_assert_eq!(decode(3, &encode(&j)), j);
        }
    }

    #[test]
    fn not_available_stays_distinct_from_zero() {
        let mut j = Job::default();
        j.pmc.cycles = Some(0);
        let back = decode(0, &encode(&j));
        assert_eq!((back.pmc.cycles, back.pmc.instructions), (Some(0), None));
        assert_eq!(PER_MESSAGE, 7);
    }
}
