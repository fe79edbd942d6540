//! The proof harnesses' shared part: the checker of the demo's audit logs
//! (`kinesis_examples::audit`), which the chaos driver runs over every worker's log.
//!
//! The harnesses are binaries: `chaos` (worker processes killed, stopped, started and cut off
//! from DynamoDB while shards split and merge and faults fire) and `soak` (the producer under
//! throttling and failures for a bounded time, memory sampled each second).

pub mod verify;
