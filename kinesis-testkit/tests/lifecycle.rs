//! Starting, sharing and stopping the embedded emulators, in-process and as a binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use kinesis_testkit::LocalAws;

#[tokio::test]
async fn shutdown_stops_both_endpoints() {
    let aws = LocalAws::start().await.unwrap();
    let kinesis = aws
        .kinesis_endpoint()
        .trim_start_matches("http://")
        .to_owned();
    let dynamodb = aws
        .dynamodb_endpoint()
        .trim_start_matches("http://")
        .to_owned();
    assert!(std::net::TcpStream::connect(&kinesis).is_ok());
    aws.shutdown().await;
    assert!(std::net::TcpStream::connect(&kinesis).is_err());
    assert!(std::net::TcpStream::connect(&dynamodb).is_err());
}

#[tokio::test]
async fn dropping_the_handle_stops_the_emulators() {
    let aws = LocalAws::start().await.unwrap();
    let kinesis = aws
        .kinesis_endpoint()
        .trim_start_matches("http://")
        .to_owned();
    drop(aws);
    // The emulator thread winds down on its own; wait for it with a generous bound.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&kinesis).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still listening after drop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(start_paused = true)]
async fn emulators_keep_real_time_under_a_paused_test_clock() {
    // The emulators run on their own runtime, so a test that pauses tokio's clock (as lease
    // and rate-limit tests do) can still create streams and wait for them to become ACTIVE.
    let aws = LocalAws::builder()
        .stream_delay(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    aws.create_stream("paused", 2).await.unwrap();
    let shards = kinesis_testkit::streams::open_shards(&aws.kinesis_client().await, "paused")
        .await
        .unwrap();
    assert_eq!(shards.len(), 2);
}

#[tokio::test]
async fn two_instances_are_independent() {
    let a = LocalAws::start().await.unwrap();
    let b = LocalAws::start().await.unwrap();
    assert_ne!(a.kinesis_endpoint(), b.kinesis_endpoint());
    a.create_stream("only-in-a", 1).await.unwrap();
    let streams = b
        .kinesis_client()
        .await
        .list_streams()
        .send()
        .await
        .unwrap();
    assert!(streams.stream_names().is_empty());
}

#[tokio::test]
async fn a_taken_port_is_a_typed_error() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let err = LocalAws::builder()
        .kinesis_port(port)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, kinesis_testkit::TestkitError::Bind { .. }),
        "{err}"
    );
}

/// Kills the child process when the test ends, pass or fail.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_both_emulators_for_other_processes() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_kinesis-testkit"))
            .args([
                "--kinesis-port",
                "0",
                "--dynamodb-port",
                "0",
                "--enforce-limits",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let kinesis = lines.next().unwrap().unwrap();
    let dynamodb = lines.next().unwrap().unwrap();
    let limits = lines.next().unwrap().unwrap();
    let kinesis = kinesis
        .strip_prefix("kinesis  ")
        .expect(&kinesis)
        .to_owned();
    let dynamodb = dynamodb
        .strip_prefix("dynamodb ")
        .expect(&dynamodb)
        .to_owned();
    assert_eq!(limits, "shard write limits: enforced");

    let options = kinesis_common::client::ClientOptions::local(kinesis, dynamodb);
    kinesis_testkit::streams::create_stream(&options.kinesis().await, "from-outside", 1)
        .await
        .unwrap();
    let tables = options.dynamodb().await.list_tables().send().await.unwrap();
    assert!(tables.table_names().is_empty());
}

#[tokio::test]
async fn the_binary_keeps_serving_after_its_reader_closes_stdout() {
    // The soak once read the endpoint, closed the pipe, and lost the emulator to a panic in
    // println! on the next line.
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (kinesis_port, dynamodb_port) = (free(), free());
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_kinesis-testkit"))
            .args(["--kinesis-port", &kinesis_port.to_string()])
            .args(["--dynamodb-port", &dynamodb_port.to_string()])
            .args(["--put-fault-probability", "0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    drop(child.0.stdout.take());
    let address = format!("127.0.0.1:{kinesis_port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(std::time::Instant::now() < deadline, "never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // It prints its banner right after it listens: give that time to meet the closed pipe.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.0.try_wait().unwrap().is_none(), "the emulator exited");
    let endpoint = format!("http://{address}");
    let options = kinesis_common::client::ClientOptions::local(endpoint.clone(), endpoint);
    kinesis_testkit::streams::create_stream(&options.kinesis().await, "after-close", 1)
        .await
        .unwrap();
}
