//! Building blocks of the demo app (`examples/demo_app`): the batch-file sink that plays the
//! part of Firehose, the record generator, and the audit log the chaos test reads.

pub mod audit;
pub mod generator;
pub mod sink;
