#![doc = include_str!("../README.md")]

mod backups;
mod capacity;
mod fault;
mod front;
mod local;
mod s3;
pub mod streams;
pub mod tables;
mod target;
mod tls;

pub use capacity::{CapacityReport, OperationCapacity};
pub use fault::{FaultAction, FaultRule, FaultStats, Faults, RuleId, Service};
pub use local::{
    DYNAMODB_UPSTREAM_ENV, DynamoDbEmulator, KINESIS_UPSTREAM_ENV, KinesisEmulator, LocalAws,
    LocalAwsBuilder, TestkitError,
};
pub use s3::LocalS3;
pub use target::{Target, TargetChoice};
