//! The embedded emulator in a child process (the bench binary run again with `--serve`), so
//! that the CPU time and memory a bench reports are its own process's alone.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use aws_sdk_kinesis::config::retry::RetryConfig;
use kinesis_common::client::ClientOptions;
use kinesis_testkit::{LocalAws, streams};

/// The flag that makes a bench binary serve the emulator instead of measuring.
pub const SERVE_FLAG: &str = "--serve";

/// Shards an account may have in the child's emulator: room for streams of thousands of
/// shards (the emulator's default is AWS's 1,000).
const ACCOUNT_SHARD_LIMIT: u32 = 100_000;

/// Runs the emulator (with or without the shard write limits) and prints its endpoints,
/// until the parent closes this process's stdin. Called by the child.
pub async fn serve(limits: bool) {
    let aws = LocalAws::builder()
        .enforce_limits(limits)
        .shard_limit(ACCOUNT_SHARD_LIMIT)
        .start()
        .await
        .expect("emulator starts");
    println!("{} {}", aws.kinesis_endpoint(), aws.dynamodb_endpoint());
    std::io::stdout().flush().ok();
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
    aws.shutdown().await;
}

/// The emulator running in a child process; it stops when this is dropped.
#[derive(Debug)]
pub struct ChildEmulator {
    child: Child,
    /// Kinesis's endpoint URL.
    pub kinesis: String,
    /// DynamoDB's endpoint URL.
    pub dynamodb: String,
}

impl ChildEmulator {
    /// Starts this binary again with [`SERVE_FLAG`] (and `--no-limits` when `limits` is
    /// false, which the child's arguments must accept) and waits for its endpoints.
    pub fn start(limits: bool) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .arg(SERVE_FLAG)
            .args((!limits).then_some("--no-limits"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("emulator process starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("endpoints");
        let mut endpoints = line.split_whitespace();
        let kinesis = endpoints.next().expect("kinesis endpoint").to_owned();
        let dynamodb = endpoints.next().expect("dynamodb endpoint").to_owned();
        ChildEmulator {
            child,
            kinesis,
            dynamodb,
        }
    }
}

impl ChildEmulator {
    /// A Kinesis client of this emulator, with a stream `name` of `shards` shards made.
    pub async fn kinesis_with_stream(&self, name: &str, shards: u32) -> aws_sdk_kinesis::Client {
        let client = ClientOptions::local(&self.kinesis, &self.dynamodb)
            .kinesis()
            .await;
        streams::create_stream(&client, name, shards)
            .await
            .expect("stream");
        client
    }
}

/// `client` with the SDK's own retries off, as the producer's put client is.
pub fn without_retries(client: &aws_sdk_kinesis::Client) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::from_conf(
        client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

impl Drop for ChildEmulator {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
