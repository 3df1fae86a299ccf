//! What every user-level pager shares (the RT pager, the TS pager and the
//! root task's own loader): the table of which frame backs which page of
//! which client ([`table`]), a free list of frames taken back ([`free`]),
//! loading a client's image, stack and heap into frames ([`load`]), and,
//! on the bare-metal target, the sigma0 and root-task protocols as a
//! client sees them ([`sigma0`], [`root`]) and the message plumbing of a
//! pager's server loop ([`msg`]).
//!
//! A pager stacked on sigma0 works like this: the root task binds it to a
//! partition and starts it; it asks the root task for its clients one by
//! one ([`root::next_client`]: thread, boot module pages, heap and stack
//! sizes), backs each with frames from sigma0 ([`sigma0::frame`]: a bound
//! pager gets only its partition's colours, round robin over them),
//! records every page in its [`table::Pages`], says the client is ready
//! ([`root::client_ready`]), and then answers its clients' page faults
//! from the table ([`msg::serve`], [`msg::map_reply`]).
#![cfg_attr(not(test), no_std)]

pub mod free;
pub mod load;
pub mod table;

#[cfg(target_os = "none")]
pub mod msg;
#[cfg(target_os = "none")]
pub mod root;
#[cfg(target_os = "none")]
pub mod sigma0;
