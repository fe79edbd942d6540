//! Building SDK clients for AWS, a local emulator, or any compatible endpoint.
//!
//! The defaults are the SDK's: region, credentials and endpoints come from the environment and
//! the default provider chain, so `AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_KINESIS` and `AWS_ENDPOINT_URL_DYNAMODB` all work. Options set here win
//! over the environment.

use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{Builder as HttpClientBuilder, ConnectorBuilder, tls};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The HTTP client every SDK client built here uses: hyper 1 with rustls on `ring`, HTTP/1.1
/// and HTTP/2, the operating system's root certificates, and the proxy the environment names
/// (`HTTPS_PROXY`, `NO_PROXY`, ...), as the SDK's default client does with `aws-lc`. Plain
/// `http://` endpoints (emulators) work too.
///
/// The SDK crates are built without their default client (which would compile `aws-lc` and a
/// legacy hyper 0.14 stack); an `SdkConfig` loaded by a caller whose own `aws-config` keeps its
/// default features carries that default client instead, which works as well.
pub fn https_client() -> SharedHttpClient {
    HttpClientBuilder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// `config` as it is when it carries an HTTP client, or with [`https_client`] when it carries
/// none (an `SdkConfig` built by hand, or loaded by an `aws-config` without default features),
/// so that clients built from it can send requests.
pub fn with_http_client(config: &SdkConfig) -> SdkConfig {
    if config.http_client().is_some() {
        config.clone()
    } else {
        config.to_builder().http_client(https_client()).build()
    }
}

/// Region used with local endpoints when none is given.
pub const LOCAL_REGION: &str = "us-east-1";

/// How to reach Kinesis and DynamoDB.
///
/// ```
/// use kinesis_common::client::ClientOptions;
/// // An emulator on this machine, with fake static credentials (emulators check the
/// // signature's shape, not the keys).
/// let local = ClientOptions::local("http://127.0.0.1:4567", "http://127.0.0.1:8000");
/// // Real AWS through the default chain, in a chosen region.
/// let aws = ClientOptions::new().region("eu-west-1");
/// # let _ = (local, aws);
/// ```
#[derive(Clone, Default)]
pub struct ClientOptions {
    region: Option<String>,
    endpoint_url: Option<String>,
    kinesis_endpoint_url: Option<String>,
    dynamodb_endpoint_url: Option<String>,
    credentials: Option<Credentials>,
    max_attempts: Option<u32>,
    operation_timeout: Option<Duration>,
}

impl fmt::Debug for ClientOptions {
    // Credentials never reach logs, not even their access key id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("kinesis_endpoint_url", &self.kinesis_endpoint_url)
            .field("dynamodb_endpoint_url", &self.dynamodb_endpoint_url)
            .field("static_credentials", &self.credentials.is_some())
            .field("max_attempts", &self.max_attempts)
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// The SDK's defaults: environment, profile, instance metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Emulators on the given endpoints, region `us-east-1`, static fake credentials.
    pub fn local(
        kinesis_endpoint: impl Into<String>,
        dynamodb_endpoint: impl Into<String>,
    ) -> Self {
        ClientOptions::new()
            .region(LOCAL_REGION)
            .kinesis_endpoint_url(kinesis_endpoint)
            .dynamodb_endpoint_url(dynamodb_endpoint)
            .static_credentials("local", "local")
    }

    /// The AWS region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// One endpoint for both services (as `AWS_ENDPOINT_URL`).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// The Kinesis endpoint (as `AWS_ENDPOINT_URL_KINESIS`).
    pub fn kinesis_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.kinesis_endpoint_url = Some(url.into());
        self
    }

    /// The DynamoDB endpoint (as `AWS_ENDPOINT_URL_DYNAMODB`).
    pub fn dynamodb_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.dynamodb_endpoint_url = Some(url.into());
        self
    }

    /// Static credentials instead of the default chain (for emulators, or short-lived keys).
    pub fn static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some(Credentials::from_keys(
            access_key_id,
            secret_access_key,
            None,
        ));
        self
    }

    /// Attempts per call made by the SDK's own retry layer (1 disables its retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Turns the SDK's own retries off, for code that retries by itself or tests that expect errors.
    pub fn without_sdk_retries(self) -> Self {
        self.max_attempts(1)
    }

    /// Timeout of one call, retries included.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self
    }

    /// The Kinesis endpoint these options select, if any is set here.
    pub fn kinesis_endpoint(&self) -> Option<&str> {
        self.kinesis_endpoint_url
            .as_deref()
            .or(self.endpoint_url.as_deref())
    }

    /// The DynamoDB endpoint these options select, if any is set here.
    pub fn dynamodb_endpoint(&self) -> Option<&str> {
        self.dynamodb_endpoint_url
            .as_deref()
            .or(self.endpoint_url.as_deref())
    }

    /// Loads the shared SDK configuration.
    pub async fn sdk_config(&self) -> SdkConfig {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(credentials) = &self.credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        if let Some(attempts) = self.max_attempts {
            let retry = if attempts <= 1 {
                RetryConfig::disabled()
            } else {
                RetryConfig::standard().with_max_attempts(attempts)
            };
            loader = loader.retry_config(retry);
        }
        if let Some(timeout) = self.operation_timeout {
            loader =
                loader.timeout_config(TimeoutConfig::builder().operation_timeout(timeout).build());
        }
        loader.load().await
    }

    /// A Kinesis client from an already loaded configuration.
    pub fn kinesis_client(&self, config: &SdkConfig) -> aws_sdk_kinesis::Client {
        let mut builder = aws_sdk_kinesis::config::Builder::from(config);
        if let Some(url) = &self.kinesis_endpoint_url {
            builder = builder.endpoint_url(url);
        }
        aws_sdk_kinesis::Client::from_conf(builder.build())
    }

    /// A DynamoDB client from an already loaded configuration.
    pub fn dynamodb_client(&self, config: &SdkConfig) -> aws_sdk_dynamodb::Client {
        let mut builder = aws_sdk_dynamodb::config::Builder::from(config);
        if let Some(url) = &self.dynamodb_endpoint_url {
            builder = builder.endpoint_url(url);
        }
        aws_sdk_dynamodb::Client::from_conf(builder.build())
    }

    /// Loads the configuration and builds a Kinesis client.
    pub async fn kinesis(&self) -> aws_sdk_kinesis::Client {
        self.kinesis_client(&self.sdk_config().await)
    }

    /// Loads the configuration and builds a DynamoDB client.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb_client(&self.sdk_config().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_an_http_client_gets_one() {
        let bare = SdkConfig::builder().build();
        assert!(bare.http_client().is_none());
        assert!(with_http_client(&bare).http_client().is_some());
    }

    #[tokio::test]
    async fn loaded_configurations_carry_an_http_client() {
        let config = ClientOptions::local("http://127.0.0.1:1", "http://127.0.0.1:2")
            .sdk_config()
            .await;
        assert!(config.http_client().is_some());
    }

    #[test]
    fn debug_never_shows_credentials() {
        let options = ClientOptions::local("http://k", "http://d")
            .static_credentials("AKIDSECRETID", "SUPERSECRET");
        let text = format!("{options:?}");
        assert!(!text.contains("AKIDSECRETID"));
        assert!(!text.contains("SUPERSECRET"));
        assert!(text.contains("static_credentials: true"));
    }

    #[test]
    fn service_endpoints_win_over_the_shared_one() {
        let options = ClientOptions::new()
            .endpoint_url("http://shared")
            .kinesis_endpoint_url("http://k");
        assert_eq!(options.kinesis_endpoint(), Some("http://k"));
        assert_eq!(options.dynamodb_endpoint(), Some("http://shared"));
    }

    #[tokio::test]
    async fn local_options_configure_region_and_endpoints() {
        let options =
            ClientOptions::local("http://127.0.0.1:1", "http://127.0.0.1:2").without_sdk_retries();
        let config = options.sdk_config().await;
        assert_eq!(config.region().map(|r| r.as_ref()), Some(LOCAL_REGION));
        let kinesis = options.kinesis_client(&config);
        assert_eq!(
            kinesis.config().region().map(|r| r.as_ref()),
            Some(LOCAL_REGION)
        );
    }
}
