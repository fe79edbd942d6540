//! `kinesis-testkit`: the embedded Kinesis and DynamoDB emulators on fixed loopback ports, for
//! the AWS CLI, boto3, or any process that should share them. Runs until Ctrl-C.

use std::io::Write as _;
use std::time::Duration;

use clap::Parser;
use kinesis_testkit::{FaultRule, LocalAws};

/// Serve Kinesis and DynamoDB emulators on 127.0.0.1 until Ctrl-C.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port of the Kinesis endpoint.
    #[arg(long, default_value_t = 4567)]
    kinesis_port: u16,
    /// Also serve Kinesis over HTTPS on this port (self-signed certificate; 0: any free
    /// port), for clients that refuse plain HTTP such as the Java KPL.
    #[arg(long)]
    kinesis_tls_port: Option<u16>,
    /// Port of the DynamoDB endpoint.
    #[arg(long, default_value_t = 8000)]
    dynamodb_port: u16,
    /// Enforce AWS's shard write limits (1 MiB/s and 1000 records/s per shard).
    #[arg(long)]
    enforce_limits: bool,
    /// Milliseconds streams stay CREATING/UPDATING before ACTIVE.
    #[arg(long, default_value_t = 0)]
    stream_delay_ms: u64,
    /// Fail this fraction of PutRecords requests (throttled, 500, dropped connection, or 20%
    /// of their entries refused), for soak tests of the producer.
    #[arg(long, default_value_t = 0.0)]
    put_fault_probability: f64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(kinesis_common::logging::env_filter(""))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut builder = LocalAws::builder();
    if let Some(port) = args.kinesis_tls_port {
        builder = builder.kinesis_tls_port(port);
    }
    let aws = match builder
        .kinesis_port(args.kinesis_port)
        .dynamodb_port(args.dynamodb_port)
        .enforce_limits(args.enforce_limits)
        .stream_delay(std::time::Duration::from_millis(args.stream_delay_ms))
        .start()
        .await
    {
        Ok(aws) => aws,
        Err(e) => {
            eprintln!("kinesis-testkit: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let p = args.put_fault_probability / 4.0;
    if p > 0.0 {
        aws.kinesis_faults()
            .add(FaultRule::throttle().on("PutRecords").probability(p))
            .add(FaultRule::internal_error().on("PutRecords").probability(p))
            .add(FaultRule::drop_connection().on("PutRecords").probability(p))
            .add(FaultRule::fail_entries(0.2).on("PutRecords").probability(p))
            .add(
                FaultRule::latency(Duration::from_millis(300))
                    .on("PutRecords")
                    .probability(p),
            );
    }
    let limits = if args.enforce_limits {
        "enforced"
    } else {
        "off"
    };
    // The TLS line comes before `dynamodb`, which readers take as the banner's last endpoint.
    let tls = aws
        .kinesis_tls_endpoint()
        .map(|url| format!("kinesis-tls {url}\n"))
        .unwrap_or_default();
    let mut banner = format!(
        "kinesis  {k}\n{tls}dynamodb {d}\nshard write limits: {limits}\n",
        k = aws.kinesis_endpoint(),
        d = aws.dynamodb_endpoint()
    );
    if p > 0.0 {
        banner += &format!(
            "PutRecords faults: {:.1}%\n",
            args.put_fault_probability * 100.0
        );
    }
    banner += &format!(
        "export AWS_ENDPOINT_URL_KINESIS={k}\nexport AWS_ENDPOINT_URL_DYNAMODB={d}\n\
         export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local\n\
         Ctrl-C stops it.\n",
        k = aws.kinesis_endpoint(),
        d = aws.dynamodb_endpoint()
    );
    // One write, and its failure ignored: a parent that read the endpoint and closed the pipe
    // must not bring the emulator down (println! panics on a broken pipe).
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(banner.as_bytes())
        .and_then(|()| stdout.flush());
    drop(stdout);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    if p > 0.0 {
        eprintln!(
            "kinesis-testkit: injected {:?}",
            aws.kinesis_faults().stats()
        );
    }
    aws.shutdown().await;
    std::process::ExitCode::SUCCESS
}
