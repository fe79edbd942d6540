//! Building blocks of the demo app (`examples/demo_app`): the batch-file sink that plays the
//! part of Firehose, and the record generator.

pub mod generator;
pub mod sink;
