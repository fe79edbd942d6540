//! The embedded default: real Kinesis and DynamoDB emulators in-process on 127.0.0.1.
//!
//! `cargo test` and the demo need no AWS account, no Docker and no JVM: [`LocalAws`] starts
//! [`ferrokinesis`] (Kinesis) and [`dynoxide`] (DynamoDB) on loopback ports, and the real
//! `aws-sdk-kinesis` / `aws-sdk-dynamodb` clients talk to them over HTTP exactly as they talk
//! to AWS. Between the clients and each emulator sits a [`Faults`] layer that tests use to
//! throttle, fail, delay or cut requests by rule.
//!
//! ```no_run
//! use kinesis_testkit::{FaultRule, LocalAws};
//!
//! # async fn example() -> Result<(), kinesis_testkit::TestkitError> {
//! let aws = LocalAws::builder().enforce_limits(true).start().await?;
//! aws.create_stream("clicks", 2).await?;
//! aws.kinesis_faults().add(FaultRule::throttle().on("PutRecords").times(3));
//! let kinesis = aws.kinesis_client().await;
//! # let _ = kinesis; Ok(()) }
//! ```
//!
//! The `kinesis-testkit` binary serves the same emulators on fixed ports for other processes.

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

/// The README's Rust snippets, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
