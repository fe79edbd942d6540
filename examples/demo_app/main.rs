//! The end-to-end demo: web page → producer → stream → consumer → batched files.
//!
//! Coming with the producer and consumer milestones. For now it starts the embedded emulators,
//! creates the demo stream, and says what is coming.

use kinesis_testkit::LocalAws;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let aws = match LocalAws::start().await {
        Ok(aws) => aws,
        Err(e) => {
            eprintln!("demo_app: could not start the embedded emulators: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(e) = aws.create_stream("demo", 4).await {
        eprintln!("demo_app: could not create the demo stream: {e}");
        return std::process::ExitCode::FAILURE;
    }
    println!(
        "Embedded Kinesis at {} (stream \"demo\", 4 shards)",
        aws.kinesis_endpoint()
    );
    println!("Embedded DynamoDB at {}", aws.dynamodb_endpoint());
    println!("The demo's web page, producer and consumer arrive with the next milestones.");
    aws.shutdown().await;
    std::process::ExitCode::SUCCESS
}
