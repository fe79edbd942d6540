//! Choosing where examples and tools talk to: real AWS, a given endpoint, or the embedded
//! emulators, in the order a user expects.
//!
//! 1. `aws`: real AWS through the SDK's default chain (credentials, region).
//! 2. Endpoints given as options, or in `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_KINESIS` /
//!    `AWS_ENDPOINT_URL_DYNAMODB`: that emulator or service. Without `AWS_ACCESS_KEY_ID` set,
//!    fake static credentials are used (emulators only check the signature's shape), and
//!    `us-east-1` unless `AWS_REGION` is set.
//! 3. Otherwise: the embedded emulators, started in this process.

use kinesis_common::client::{ClientOptions, LOCAL_REGION};

use crate::local::{LocalAws, TestkitError};

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct TargetChoice {
    /// Use real AWS.
    pub aws: bool,
    /// A Kinesis endpoint URL.
    pub kinesis_endpoint: Option<String>,
    /// A DynamoDB endpoint URL.
    pub dynamodb_endpoint: Option<String>,
    /// With the embedded emulators: enforce shard write limits.
    pub enforce_limits: bool,
}

/// Where to connect, and the embedded emulators if they were started (keep it alive).
#[derive(Debug)]
pub struct Target {
    /// Client options for the chosen services.
    pub options: ClientOptions,
    /// The embedded emulators, when they were chosen.
    pub local: Option<LocalAws>,
    /// One line saying what was chosen, for the user.
    pub description: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Target {
    /// Resolves a choice, starting the embedded emulators if nothing else was named.
    pub async fn resolve(choice: TargetChoice) -> Result<Target, TestkitError> {
        if choice.aws {
            return Ok(Target {
                options: ClientOptions::new(),
                local: None,
                description: "real AWS (default credential chain and region)".into(),
            });
        }
        let kinesis = choice
            .kinesis_endpoint
            .or_else(|| env("AWS_ENDPOINT_URL_KINESIS"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        let dynamodb = choice
            .dynamodb_endpoint
            .or_else(|| env("AWS_ENDPOINT_URL_DYNAMODB"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        if kinesis.is_some() || dynamodb.is_some() {
            let mut options = ClientOptions::new()
                .region(env("AWS_REGION").unwrap_or_else(|| LOCAL_REGION.into()));
            if env("AWS_ACCESS_KEY_ID").is_none() {
                options = options.static_credentials("local", "local");
            }
            let mut parts = Vec::new();
            if let Some(url) = kinesis {
                parts.push(format!("Kinesis at {url}"));
                options = options.kinesis_endpoint_url(url);
            }
            if let Some(url) = dynamodb {
                parts.push(format!("DynamoDB at {url}"));
                options = options.dynamodb_endpoint_url(url);
            }
            return Ok(Target {
                options,
                local: None,
                description: parts.join(", "),
            });
        }
        let local = LocalAws::builder()
            .enforce_limits(choice.enforce_limits)
            .start()
            .await?;
        let description = format!(
            "embedded emulators: Kinesis at {}, DynamoDB at {}{}",
            local.kinesis_endpoint(),
            local.dynamodb_endpoint(),
            if choice.enforce_limits {
                " (shard limits enforced)"
            } else {
                ""
            }
        );
        Ok(Target {
            options: local.client_options(),
            local: Some(local),
            description,
        })
    }
}
