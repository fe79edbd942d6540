//! Benchmarks of the Kinesis workspace. Run them with `cargo bench -p kinesis-benches`.
//!
//! * `aggregation`: aggregation + encoding throughput next to raw MD5 over the same bytes.
//! * `shard_map`: hash key → shard lookups with 1, 100 and 10,000 shards.
//!
//! The library holds what the end-to-end binaries share.

pub mod child_emulator;
pub mod ownership;
pub mod process;
