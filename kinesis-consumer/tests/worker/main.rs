//! The worker's integration suite, one module per capability, in one test binary: each binary
//! links the AWS SDK and both emulators (70 MB and seconds of linking apiece), so fifteen of them
//! cost a gigabyte of disk and minutes of CI. The metrics test keeps a binary of its own because
//! it installs a process-wide recorder.
//!
//! One capability: `cargo test -p kinesis-consumer --test worker handoff::`.

#[path = "../support/mod.rs"]
mod support;

mod balance;
mod cleanup;
mod consume;
mod fan_out;
mod handoff;
mod kcl3_table;
mod kcl_shared_table;
mod leader;
mod lease_table_faults;
mod multi_stream;
mod partition;
mod records;
mod reshard;
mod stream_claim;
mod table_options;
