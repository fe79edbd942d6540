//! [`LocalAws`]: Kinesis and DynamoDB emulators serving HTTP on 127.0.0.1.
//!
//! ```text
//!   test / demo (any runtime, paused clock or not)
//!        │ aws-sdk-kinesis            │ aws-sdk-dynamodb
//!        ▼                            ▼
//!   ┌─ emulator thread: own multi-thread tokio runtime ──────────────────────┐
//!   │ front :K  Faults → ferrokinesis router      front :D  Faults → proxy ─┐ │
//!   │                                                  dynoxide :internal ◀┘ │
//!   └────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The emulators run on a thread of their own with their own runtime, so a test that pauses
//! tokio's clock or runs on a current-thread runtime does not slow or freeze them. Dropping the
//! handle (or [`LocalAws::shutdown`]) stops them.
//!
//! # Independent emulators
//!
//! With [`LocalAwsBuilder::kinesis_upstream`] / [`LocalAwsBuilder::dynamodb_upstream`], or the
//! environment variables [`KINESIS_UPSTREAM_ENV`] and [`DYNAMODB_UPSTREAM_ENV`], the fronts
//! forward to emulators already running elsewhere on loopback (kinesis-mock, DynamoDB Local)
//! instead of starting the embedded ones. Fault rules still apply, so every test of the
//! producer and consumer runs unchanged against either pair; [`LocalAws::kinesis_emulator`]
//! tells a test which one it talks to where their behaviour differs.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use kinesis_common::client::ClientOptions;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::capacity::{Capacity, CapacityReport};
use crate::fault::{Faults, Service};
use crate::front::{Front, Upstream};

/// Environment variable naming a Kinesis emulator to forward to (`http://127.0.0.1:4568`).
pub const KINESIS_UPSTREAM_ENV: &str = "KINESIS_TESTKIT_KINESIS_UPSTREAM";
/// Environment variable naming a DynamoDB emulator to forward to (`http://127.0.0.1:8001`).
pub const DYNAMODB_UPSTREAM_ENV: &str = "KINESIS_TESTKIT_DYNAMODB_UPSTREAM";

/// Which Kinesis emulator answers behind the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KinesisEmulator {
    /// The embedded ferrokinesis.
    Ferrokinesis,
    /// An emulator running elsewhere (in CI: kinesis-mock).
    External,
}

/// Which DynamoDB emulator answers behind the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DynamoDbEmulator {
    /// The embedded dynoxide.
    Dynoxide,
    /// An emulator running elsewhere (in CI: DynamoDB Local).
    External,
}

/// Largest request body the Kinesis front accepts: a full 5 MiB PutRecords in JSON with base64
/// data is about 6.7 MiB.
const KINESIS_BODY_LIMIT: usize = 7 * 1024 * 1024;

/// Why the emulators could not start or a helper failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// A port could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An upstream address is not an `http://host:port` URL on a reachable host.
    #[error("{what} upstream {value:?} is not an http://host:port address: {reason}")]
    Upstream {
        /// Which service.
        what: &'static str,
        /// What was given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The emulator thread or runtime failed.
    #[error("emulator failed to start: {reason}")]
    Start {
        /// What failed.
        reason: String,
    },
    /// A Kinesis or DynamoDB call made by a helper failed.
    #[error(transparent)]
    Service(#[from] kinesis_common::ServiceError),
    /// A helper waited too long for a state change.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What it waited for.
        what: String,
        /// How long.
        waited: Duration,
    },
}

/// Options of the embedded emulators. Defaults suit tests: no delays, limits off.
#[derive(Debug, Clone)]
pub struct LocalAwsBuilder {
    kinesis_port: u16,
    kinesis_tls_port: Option<u16>,
    dynamodb_port: u16,
    enforce_limits: bool,
    stream_delay: Duration,
    shard_limit: u32,
    subscribe_session: Duration,
    worker_threads: usize,
    kinesis_upstream: Option<String>,
    dynamodb_upstream: Option<String>,
}

impl Default for LocalAwsBuilder {
    fn default() -> Self {
        LocalAwsBuilder {
            kinesis_port: 0,
            kinesis_tls_port: None,
            dynamodb_port: 0,
            enforce_limits: false,
            stream_delay: Duration::ZERO,
            shard_limit: 1000,
            subscribe_session: Duration::from_secs(300),
            worker_threads: 2,
            kinesis_upstream: None,
            dynamodb_upstream: None,
        }
    }
}

impl LocalAwsBuilder {
    /// Kinesis port on 127.0.0.1 (default 0: any free port).
    pub fn kinesis_port(mut self, port: u16) -> Self {
        self.kinesis_port = port;
        self
    }

    /// Also serve Kinesis over HTTPS on this port of 127.0.0.1 (0: any free port), with a
    /// self-signed certificate made at start, for clients that refuse plain HTTP (the Java
    /// KPL). Off by default; [`LocalAws::kinesis_tls_endpoint`] gives its URL.
    pub fn kinesis_tls_port(mut self, port: u16) -> Self {
        self.kinesis_tls_port = Some(port);
        self
    }

    /// DynamoDB port on 127.0.0.1 (default 0: any free port).
    pub fn dynamodb_port(mut self, port: u16) -> Self {
        self.dynamodb_port = port;
        self
    }

    /// Enforce AWS's shard write limits, 1 MiB/s and 1000 records/s (default off).
    pub fn enforce_limits(mut self, enforce: bool) -> Self {
        self.enforce_limits = enforce;
        self
    }

    /// How long streams stay CREATING/UPDATING/DELETING (default 0).
    pub fn stream_delay(mut self, delay: Duration) -> Self {
        self.stream_delay = delay;
        self
    }

    /// Most open shards across all streams (default 1000).
    pub fn shard_limit(mut self, limit: u32) -> Self {
        self.shard_limit = limit;
        self
    }

    /// Lifetime of one SubscribeToShard session (default 5 minutes, as AWS).
    pub fn subscribe_session(mut self, session: Duration) -> Self {
        self.subscribe_session = session;
        self
    }

    /// Threads of the emulators' runtime (default 2).
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = threads.max(1);
        self
    }

    /// Forward Kinesis requests to this emulator (`http://host:port`) instead of starting
    /// ferrokinesis. Default: the value of [`KINESIS_UPSTREAM_ENV`], if set. The options for
    /// the embedded emulator (limits, delays, shard limit, session length) then do not apply.
    pub fn kinesis_upstream(mut self, url: impl Into<String>) -> Self {
        self.kinesis_upstream = Some(url.into());
        self
    }

    /// Forward DynamoDB requests to this emulator (`http://host:port`) instead of starting
    /// dynoxide. Default: the value of [`DYNAMODB_UPSTREAM_ENV`], if set.
    pub fn dynamodb_upstream(mut self, url: impl Into<String>) -> Self {
        self.dynamodb_upstream = Some(url.into());
        self
    }

    /// Starts both emulators (or fronts for the upstreams) and returns once they accept
    /// connections.
    pub async fn start(mut self) -> Result<LocalAws, TestkitError> {
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        self.kinesis_upstream = self
            .kinesis_upstream
            .take()
            .or_else(|| from_env(KINESIS_UPSTREAM_ENV));
        self.dynamodb_upstream = self
            .dynamodb_upstream
            .take()
            .or_else(|| from_env(DYNAMODB_UPSTREAM_ENV));
        let kinesis_upstream = upstream_addr("Kinesis", self.kinesis_upstream.as_deref()).await?;
        let dynamodb_upstream =
            upstream_addr("DynamoDB", self.dynamodb_upstream.as_deref()).await?;
        let dynamodb_emulator = if dynamodb_upstream.is_some() {
            DynamoDbEmulator::External
        } else {
            DynamoDbEmulator::Dynoxide
        };
        let kinesis_emulator = if kinesis_upstream.is_some() {
            KinesisEmulator::External
        } else {
            KinesisEmulator::Ferrokinesis
        };
        let limits_enforced = self.enforce_limits && kinesis_upstream.is_none();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = oneshot::channel();
        let kinesis_faults = Faults::new(Service::Kinesis);
        let dynamodb_faults = Faults::new(Service::DynamoDb);
        let capacity = Capacity::default();
        let options = self.clone();
        let faults = (kinesis_faults.clone(), dynamodb_faults.clone());
        let counted = capacity.clone();
        std::thread::Builder::new()
            .name("kinesis-testkit".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(options.worker_threads)
                    .thread_name("kinesis-testkit-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(TestkitError::Start {
                            reason: e.to_string(),
                        }));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let upstreams = (kinesis_upstream, dynamodb_upstream);
                    match bind_all(&options, faults, counted, upstreams, stop_rx.clone()).await {
                        Ok(addrs) => {
                            let _ = ready_tx.send(Ok(addrs));
                            let mut stop_rx = stop_rx;
                            let _ = stop_rx.wait_for(|stop| *stop).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
                // Connections still open are cut when the runtime goes away.
                runtime.shutdown_timeout(Duration::from_secs(1));
                let _ = done_tx.send(());
            })
            .map_err(|e| TestkitError::Start {
                reason: e.to_string(),
            })?;

        let addrs = ready_rx.await.map_err(|_| TestkitError::Start {
            reason: "emulator thread ended before it was ready".into(),
        })??;
        tracing::debug!(?addrs, ?kinesis_emulator, "emulators listening");
        Ok(LocalAws {
            kinesis_addr: addrs.kinesis,
            kinesis_tls: addrs.kinesis_tls,
            dynamodb_addr: addrs.dynamodb,
            kinesis_emulator,
            dynamodb_emulator,
            limits_enforced,
            kinesis_faults,
            dynamodb_faults,
            capacity,
            stop: stop_tx,
            done: Some(done_rx),
        })
    }
}

async fn bind(port: u16) -> Result<TcpListener, TestkitError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr)
        .await
        .map_err(|source| TestkitError::Bind { addr, source })
}

/// Resolves an `http://host:port` upstream to one socket address.
async fn upstream_addr(
    what: &'static str,
    url: Option<&str>,
) -> Result<Option<SocketAddr>, TestkitError> {
    let Some(url) = url else { return Ok(None) };
    let refuse = |reason: &str| TestkitError::Upstream {
        what,
        value: url.to_owned(),
        reason: reason.to_owned(),
    };
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(|| refuse("only plain http is forwarded"))?
        .trim_end_matches('/');
    let mut addrs = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| refuse(&e.to_string()))?;
    addrs
        .next()
        .map(Some)
        .ok_or_else(|| refuse("the host has no address"))
}

async fn bind_all(
    options: &LocalAwsBuilder,
    (kinesis_faults, dynamodb_faults): (Faults, Faults),
    capacity: Capacity,
    (kinesis_upstream, dynamodb_upstream): (Option<SocketAddr>, Option<SocketAddr>),
    stop: watch::Receiver<bool>,
) -> Result<Addrs, TestkitError> {
    let kinesis_listener = bind(options.kinesis_port).await?;
    let kinesis_tls_listener = match options.kinesis_tls_port {
        Some(port) => Some(bind(port).await?),
        None => None,
    };
    let dynamodb_listener = bind(options.dynamodb_port).await?;
    let kinesis_addr = local_addr(&kinesis_listener)?;
    let dynamodb_addr = local_addr(&dynamodb_listener)?;
    let kinesis_upstream = match kinesis_upstream {
        Some(addr) => Upstream::proxy(addr),
        None => Upstream::Router(ferrokinesis_router(options)),
    };
    let dynamodb_upstream = match dynamodb_upstream {
        Some(addr) => Upstream::proxy(addr),
        None => Upstream::proxy(start_dynoxide(stop.clone()).await?),
    };
    let kinesis_front = Front {
        faults: kinesis_faults,
        upstream: kinesis_upstream,
        capacity: None,
        backups: None,
    };
    let kinesis_tls = match kinesis_tls_listener {
        Some(listener) => {
            let addr = local_addr(&listener)?;
            let (tls, certificate) = crate::tls::self_signed_acceptor()?;
            let front = kinesis_front.clone();
            tokio::spawn(front.serve(listener, Some(tls), stop.clone()));
            Some(TlsEndpoint { addr, certificate })
        }
        None => None,
    };
    tokio::spawn(kinesis_front.serve(kinesis_listener, None, stop.clone()));
    let dynamodb_front = Front {
        faults: dynamodb_faults,
        upstream: dynamodb_upstream,
        capacity: Some(capacity),
        backups: Some(crate::backups::Backups::default()),
    };
    tokio::spawn(dynamodb_front.serve(dynamodb_listener, None, stop));
    Ok(Addrs {
        kinesis: kinesis_addr,
        kinesis_tls,
        dynamodb: dynamodb_addr,
    })
}

/// Where the fronts listen.
#[derive(Debug)]
struct Addrs {
    kinesis: SocketAddr,
    kinesis_tls: Option<TlsEndpoint>,
    dynamodb: SocketAddr,
}

/// The HTTPS listener and its self-signed certificate (DER).
struct TlsEndpoint {
    addr: SocketAddr,
    certificate: Vec<u8>,
}

impl std::fmt::Debug for TlsEndpoint {
    // The address only: the certificate's bytes would fill every log line that shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsEndpoint")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn ferrokinesis_router(options: &LocalAwsBuilder) -> axum::Router {
    let delay_ms = options.stream_delay.as_millis() as u64;
    let store_options = ferrokinesis::store::StoreOptions {
        create_stream_ms: delay_ms,
        delete_stream_ms: delay_ms,
        update_stream_ms: delay_ms,
        shard_limit: options.shard_limit,
        enforce_limits: options.enforce_limits,
        subscribe_to_shard_session_ms: options.subscribe_session.as_millis() as u64,
        ..Default::default()
    };
    let (router, _store) = ferrokinesis::create_app(store_options);
    router.layer(DefaultBodyLimit::max(KINESIS_BODY_LIMIT))
}

/// Starts dynoxide on a loopback port of its own; returns that port's address.
async fn start_dynoxide(mut stop: watch::Receiver<bool>) -> Result<SocketAddr, TestkitError> {
    let dynoxide_listener = bind(0).await?;
    let dynoxide_addr = local_addr(&dynoxide_listener)?;

    let db = dynoxide::Database::memory().map_err(|e| TestkitError::Start {
        reason: format!("dynoxide: {e}"),
    })?;
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = dynoxide::server::serve_with_shutdown(dynoxide_listener, db, shutdown).await
        {
            tracing::error!(error = %e, "dynoxide stopped");
        }
    });
    Ok(dynoxide_addr)
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, TestkitError> {
    listener.local_addr().map_err(|e| TestkitError::Start {
        reason: e.to_string(),
    })
}

/// Running Kinesis and DynamoDB emulators on 127.0.0.1. Stops them when dropped.
///
/// # Examples
///
/// ```
/// use kinesis_testkit::{FaultRule, LocalAws};
/// # #[tokio::main]
/// # async fn main() -> Result<(), kinesis_testkit::TestkitError> {
/// let aws = LocalAws::start().await?;
/// aws.create_stream("orders", 4).await?;
/// // The first PutRecords call is throttled, as AWS would when a shard is over its limit.
/// aws.kinesis_faults().add(FaultRule::throttle().on("PutRecords").times(1));
/// let kinesis = aws.kinesis_client().await;
/// let shards = kinesis.list_shards().stream_name("orders").send().await.unwrap();
/// assert_eq!(shards.shards().len(), 4);
/// let dynamodb = aws.dynamodb_client().await; // DynamoDB Local-compatible, for leases
/// # let _ = dynamodb;
/// aws.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct LocalAws {
    kinesis_addr: SocketAddr,
    kinesis_tls: Option<TlsEndpoint>,
    dynamodb_addr: SocketAddr,
    kinesis_emulator: KinesisEmulator,
    dynamodb_emulator: DynamoDbEmulator,
    limits_enforced: bool,
    kinesis_faults: Faults,
    dynamodb_faults: Faults,
    capacity: Capacity,
    stop: watch::Sender<bool>,
    done: Option<oneshot::Receiver<()>>,
}

impl LocalAws {
    /// Options for the emulators.
    pub fn builder() -> LocalAwsBuilder {
        LocalAwsBuilder::default()
    }

    /// Starts both emulators with the defaults (ports chosen by the OS, limits off).
    pub async fn start() -> Result<LocalAws, TestkitError> {
        Self::builder().start().await
    }

    /// Kinesis endpoint URL, e.g. `http://127.0.0.1:4567`.
    pub fn kinesis_endpoint(&self) -> String {
        format!("http://{}", self.kinesis_addr)
    }

    /// The Kinesis endpoint over HTTPS, e.g. `https://127.0.0.1:4443`, when
    /// [`LocalAwsBuilder::kinesis_tls_port`] asked for one. Its certificate is self-signed.
    pub fn kinesis_tls_endpoint(&self) -> Option<String> {
        self.kinesis_tls
            .as_ref()
            .map(|tls| format!("https://{}", tls.addr))
    }

    /// The HTTPS endpoint's self-signed certificate (DER), for a client that trusts it rather
    /// than skipping verification.
    pub fn kinesis_tls_certificate(&self) -> Option<&[u8]> {
        self.kinesis_tls
            .as_ref()
            .map(|tls| tls.certificate.as_slice())
    }

    /// DynamoDB endpoint URL, e.g. `http://127.0.0.1:8000`.
    pub fn dynamodb_endpoint(&self) -> String {
        format!("http://{}", self.dynamodb_addr)
    }

    /// Client options for these emulators (static fake credentials, `us-east-1`).
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions::local(self.kinesis_endpoint(), self.dynamodb_endpoint())
    }

    /// Client options whose requests are signed with `access_key_id`, so that fault rules
    /// made with [`crate::FaultRule::from_client`] match this client's traffic only (one
    /// worker's, in a partition test). Use letters and digits only: the embedded emulators
    /// take any key, but DynamoDB Local refuses others.
    pub fn client_options_for(&self, access_key_id: &str) -> ClientOptions {
        self.client_options()
            .static_credentials(access_key_id, "local")
    }

    /// The DynamoDB read and write capacity units every call through this front consumed so
    /// far, per table and operation, as DynamoDB computes them from item sizes.
    pub fn dynamodb_capacity(&self) -> CapacityReport {
        self.capacity.report()
    }

    /// A Kinesis client for this emulator with the SDK's default retries.
    pub async fn kinesis_client(&self) -> aws_sdk_kinesis::Client {
        self.client_options().kinesis().await
    }

    /// A DynamoDB client for this emulator with the SDK's default retries.
    pub async fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        self.client_options().dynamodb().await
    }

    /// Which Kinesis emulator answers: the embedded ferrokinesis or an external one.
    pub fn kinesis_emulator(&self) -> KinesisEmulator {
        self.kinesis_emulator
    }

    /// Which DynamoDB emulator answers: the embedded dynoxide or an external one.
    pub fn dynamodb_emulator(&self) -> DynamoDbEmulator {
        self.dynamodb_emulator
    }

    /// Whether shard write limits are enforced: asked for, and ferrokinesis answers (an
    /// external emulator decides for itself; kinesis-mock never throttles).
    pub fn limits_enforced(&self) -> bool {
        self.limits_enforced
    }

    /// Fault rules in front of Kinesis.
    pub fn kinesis_faults(&self) -> &Faults {
        &self.kinesis_faults
    }

    /// Fault rules in front of DynamoDB.
    pub fn dynamodb_faults(&self) -> &Faults {
        &self.dynamodb_faults
    }

    /// Stops both emulators and waits until their runtime is gone.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        // Only a signal: the emulator thread winds itself down.
        let _ = self.stop.send(true);
    }
}
