//! With `RUST_LOG=trace`, neither credentials nor record payloads reach the logs of a
//! producer or a consumer process (the `produce` and `consume` examples, which set up their
//! logs with `kinesis_common::logging::env_filter`).

mod support;

use std::process::{Command, Output};

use base64::Engine;
use kinesis_testkit::{LocalAws, streams};
use support::example;

const KEY_ID: &str = "AKIALOGHYGIENE000042";
const SECRET: &str = "logHygiene/SecretAccessKey+0000000000042";
const TOKEN: &str = "logHygieneSessionToken000000000000000000042";

fn run(aws: &LocalAws, name: &str, args: &[&str]) -> Output {
    let output = Command::new(example(name))
        .args(args)
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .env("AWS_ENDPOINT_URL_KINESIS", aws.kinesis_endpoint())
        .env("AWS_ENDPOINT_URL_DYNAMODB", aws.dynamodb_endpoint())
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", TOKEN)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_carry_no_credentials_or_payloads() {
    let aws = LocalAws::start().await.unwrap();
    let produce = run(
        &aws,
        "produce",
        &[
            "--stream",
            "logs",
            "--records",
            "300",
            "--size",
            "64",
            "--create-shards",
            "2",
        ],
    );
    let consume = run(
        &aws,
        "consume",
        &[
            "--stream",
            "logs",
            "--app-name",
            "logs-app",
            "--until-idle",
            "1",
            "--print",
        ],
    );
    let logs = [produce.stderr, consume.stderr].concat();
    let logs = String::from_utf8_lossy(&logs);

    // The logs are really at TRACE, from our crates and the SDK's: the check is not vacuous.
    let lines = logs.lines().count();
    assert!(lines > 50, "only {lines} log lines");
    for target in ["kinesis_producer", "kinesis_consumer", "hyper_util"] {
        assert!(logs.contains(target), "nothing logged by {target}");
    }
    assert!(logs.contains("TRACE"));

    for (what, secret) in [
        ("access key id", KEY_ID),
        ("secret key", SECRET),
        ("session token", TOKEN),
    ] {
        assert!(!logs.contains(secret), "the {what} is in the logs");
    }

    // Every user record, as the consumer printed it (stdout, not the logs).
    let stdout = String::from_utf8_lossy(&consume.stdout);
    let payloads: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.splitn(3, ' ').nth(2))
        .collect();
    assert_eq!(payloads.len(), 300);
    for payload in &payloads {
        assert!(!logs.contains(payload), "a record payload is in the logs");
    }
    // And every Kinesis record as it went over the wire, base64 in the JSON bodies.
    let client = aws.kinesis_client().await;
    let raw = streams::read_stream(&client, "logs").await.unwrap();
    assert!(!raw.is_empty());
    for (_, record) in raw {
        let encoded = base64::engine::general_purpose::STANDARD.encode(record.data().as_ref());
        assert!(
            !logs.contains(&encoded[..40]),
            "a request or response body is in the logs"
        );
    }
}
