//! The producer's integration suite, one module per capability, in one test binary: each binary
//! links the AWS SDK and the emulator (65 MB and seconds of linking apiece). The two metrics
//! tests keep binaries of their own because they install a process-wide recorder.
//!
//! One capability: `cargo test -p kinesis-producer --test producer ordered::`.

#[path = "../support/mod.rs"]
mod support;

mod backpressure;
mod delivery;
mod hot_keys;
mod lifecycle;
mod many_shards;
mod multi_stream;
mod ordered;
mod resilience;
