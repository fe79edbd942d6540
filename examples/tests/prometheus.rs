//! The `consume` example serves the worker's metrics for Prometheus: a scrape shows the
//! records it processed, labelled by application and stream, and its leases.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::LocalAws;
use support::example;

/// `GET /metrics` over plain HTTP/1.0; `None` while nothing listens yet.
fn scrape(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_what_the_worker_did() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("prom", 2).await.unwrap();
    let producer = Producer::builder("prom")
        .client(aws.kinesis_client().await)
        .build()
        .unwrap();
    let mut puts = Vec::new();
    for i in 0..200 {
        let record = UserRecord::new(format!("k{i}"), format!("record {i}"));
        puts.push(producer.send(record).await.unwrap());
    }
    for put in puts {
        put.await.unwrap();
    }
    producer.shutdown().await;

    // A free port for the exporter.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(example("consume"))
        .args([
            "--stream",
            "prom",
            "--app-name",
            "prom-app",
            "--until-idle",
            "30",
        ])
        .args(["--kinesis-endpoint", &aws.kinesis_endpoint()])
        .args(["--dynamodb-endpoint", &aws.dynamodb_endpoint()])
        .args(["--prometheus", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wanted = r#"kinesis_consumer_records_processed{application="prom-app",stream="prom"} 200"#;
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(60) && !last.contains(wanted) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = scrape(addr).unwrap_or_default();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(last.contains(wanted), "{last}");
    assert!(
        last.contains(r#"kinesis_consumer_leases_held{application="prom-app",stream="prom"} 2"#),
        "{last}"
    );
    assert!(
        last.contains("kinesis_consumer_processing_seconds"),
        "{last}"
    );
}
