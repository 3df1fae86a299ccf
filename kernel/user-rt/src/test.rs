//! What an in-guest test task prints: one line per check, `test NAME ...
//! ok` or `test NAME ... FAILED: why`, which the host runner counts.

/// A check's outcome: why it failed, if it did.
pub type Check = Result<(), &'static str>;

/// `Ok` if `ok`, else `why`.
pub fn check(ok: bool, why: &'static str) -> Check {
    if ok {
        Ok(())
    } else {
        Err(why)
    }
}

/// Prints the line for check `name`; returns 1 if it failed, else 0 (to
/// sum into the task's exit status).
pub fn report(name: &str, r: Check) -> u64 {
    match r {
        Ok(()) => {
            crate::println!("test {name} ... ok");
            0
        }
        Err(why) => {
            crate::println!("test {name} ... FAILED: {why}");
            1
        }
    }
}
