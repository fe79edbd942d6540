//! Building blocks of the demo app (`examples/demo_app`): the record generator, the audit
//! log the chaos test reads, a processor wrapper that feeds both, and reading the output back.
//! The Firehose part is the `kinesis-sink` crate.

pub mod audit;
pub mod generator;
pub mod observed;
pub mod output;

/// The workspace README's Rust snippets, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
