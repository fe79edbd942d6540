//! The fleet: who is alive, who leads, and who is asked to take which lease.
//!
//! Every worker writes a small heartbeat item; one of them, elected with a lock in the same
//! table, watches the heartbeats, scans the lease table now and then, and writes each
//! worker's assignments into its heartbeat item, which the worker reads back for free with
//! its next heartbeat. So the lease table is read by one worker, not by all of them.

mod election;
pub(crate) mod heartbeat;
mod kcl_members;
pub(crate) mod leader;
pub(crate) mod state_table;
mod view;
