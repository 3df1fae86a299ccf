//! Starting a thread in one step: create it, configure it, start it; if a
//! step fails, the thread is deleted again, so a failed start leaves
//! nothing behind.

use abi::sys::attr;
use abi::syscall::{thread_config, thread_create, thread_delete, thread_start};
use abi::{Error, ThreadId};

/// A thread to start: where it lives and what it is configured with before
/// it runs (what is not set here stays the kernel's default).
#[derive(Clone, Copy, Debug)]
pub struct NewThread {
    /// The thread whose address space it joins (`NIL`: a new space).
    pub space_of: ThreadId,
    /// Its UTCB's address in that space.
    pub utcb: u64,
    pub pager: ThreadId,
    pub prio: u64,
    /// Its exception handler, if it gets one.
    pub handler: Option<ThreadId>,
    /// Its rights and MCP (`abi::sys::attr`), if it gets any.
    pub privilege: Option<(u64, u64)>,
}

impl NewThread {
    pub fn new(space_of: ThreadId, utcb: u64, pager: ThreadId, prio: u64) -> NewThread {
        NewThread { space_of, utcb, pager, prio, handler: None, privilege: None }
    }

    /// With exception handler `h`.
    pub fn handler(self, h: ThreadId) -> NewThread {
        NewThread { handler: Some(h), ..self }
    }

    /// With `rights` and maximum controlled priority `mcp`.
    pub fn privileged(self, rights: u64, mcp: u64) -> NewThread {
        NewThread { privilege: Some((rights, mcp)), ..self }
    }

    /// Creates, configures and starts the thread at `ip` with stack `sp`.
    pub fn start(&self, ip: u64, sp: u64) -> Result<ThreadId, Error> {
        let t = thread_create(self.space_of, self.utcb, self.pager)?;
        match self.configure_and_start(t, ip, sp) {
            Ok(()) => Ok(t),
            Err(e) => {
                let _ = thread_delete(t);
                Err(e)
            }
        }
    }

    /// [`NewThread::start`] at function `entry` of this binary.
    pub fn start_fn(&self, entry: extern "C" fn() -> !, sp: u64) -> Result<ThreadId, Error> {
        self.start(entry as *const () as u64, sp)
    }

    fn configure_and_start(&self, t: ThreadId, ip: u64, sp: u64) -> Result<(), Error> {
        if let Some(h) = self.handler {
            thread_config(t, attr::EXCEPTION_HANDLER, h.0, 0)?;
        }
        thread_config(t, attr::PRIORITY, self.prio, 0)?;
        if let Some((rights, mcp)) = self.privilege {
            thread_config(t, attr::RIGHTS, rights, 0)?;
            thread_config(t, attr::MCP, mcp, 0)?;
        }
        thread_start(t, ip, sp)
    }
}
