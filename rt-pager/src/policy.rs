//! The RT pager's answer to a page fault, as a pure function of what it
//! knows about the client: whether its run started, and what backs the
//! page.

use pager::table::Rights;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Map this frame with these rights.
    Map(u64, Rights),
    /// Refuse; the kernel raises the fault to the client's exception
    /// handler (the root task reports and removes the task).
    Refuse(Why),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The client said its run started: no fault may happen any more,
    /// whatever the address.
    DuringRun,
    /// Nothing of the client's image, stack or heap is there.
    Outside,
    /// The page is there, but not for this access (a write to code).
    Protection,
}

impl Why {
    pub fn text(self) -> &'static str {
        match self {
            Why::DuringRun => "during its run (every page was mapped before it)",
            Why::Outside => "outside its memory",
            Why::Protection => "against the page's rights",
        }
    }
}

/// `backing`: the frame and rights the pager recorded for the page.
pub fn answer(run_started: bool, backing: Option<(u64, Rights)>, write: bool, exec: bool) -> Answer {
    if run_started {
        return Answer::Refuse(Why::DuringRun);
    }
    match backing {
        None => Answer::Refuse(Why::Outside),
        Some((_, r)) if (write && !r.write) || (exec && !r.exec) => Answer::Refuse(Why::Protection),
        Some((f, r)) => Answer::Map(f, r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: Rights = Rights { write: false, exec: true };
    const DATA: Rights = Rights { write: true, exec: false };

    #[test]
    fn before_the_run_backed_pages_map_with_their_rights() {
        assert_eq!(answer(false, Some((0x5000, CODE)), false, true), Answer::Map(0x5000, CODE));
        assert_eq!(answer(false, Some((0x6000, DATA)), true, false), Answer::Map(0x6000, DATA));
        assert_eq!(answer(false, None, false, false), Answer::Refuse(Why::Outside));
        assert_eq!(answer(false, Some((0x5000, CODE)), true, false), Answer::Refuse(Why::Protection));
        assert_eq!(answer(false, Some((0x6000, DATA)), false, true), Answer::Refuse(Why::Protection));
    }

    #[test]
    fn during_the_run_every_fault_is_refused_even_on_backed_pages() {
        for backing in [None, Some((0x5000, CODE)), Some((0x6000, DATA))] {
            for (w, x) in [(false, false), (true, false), (false, true)] {
                assert_eq!(answer(true, backing, w, x), Answer::Refuse(Why::DuringRun));
            }
        }
    }
}
