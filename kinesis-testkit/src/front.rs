//! The HTTP front of each emulator: accepts connections, applies [`Faults`], forwards.
//!
//! Kinesis requests go straight into the ferrokinesis router in this process. DynamoDB requests
//! are forwarded over loopback to dynoxide's own server, whose router is not public.
//! The front speaks HTTP/1.1 with hyper directly (not `axum::serve`) so that a fault can close
//! a connection without answering, which is what a dropped connection looks like to a client.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::backups::Backups;
use crate::capacity::Capacity;
use crate::fault::{Faults, Outcome, RequestInfo, Service};

/// How long a client may take to complete a TLS handshake.
const TLS_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// How often a held request checks whether its black hole is still in place.
const HOLD_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The access key id a request is signed with (`Credential=KEY/…` in SigV4's header).
fn access_key_id(request: &Request<Incoming>) -> Option<String> {
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    Some(credential.split('/').next()?.to_owned())
}

/// Where a front sends what it lets through.
#[derive(Clone)]
pub(crate) enum Upstream {
    /// An axum router in this process.
    Router(axum::Router),
    /// An HTTP server on loopback.
    Proxy {
        client: Box<HttpClient<HttpConnector, Body>>,
        addr: SocketAddr,
    },
}

impl Upstream {
    pub(crate) fn proxy(addr: SocketAddr) -> Self {
        let client = Box::new(HttpClient::builder(TokioExecutor::new()).build_http());
        Upstream::Proxy { client, addr }
    }

    pub(crate) async fn call(&self, request: Request<Body>) -> Response<Body> {
        match self {
            Upstream::Router(router) => match router.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            Upstream::Proxy { client, addr } => {
                let (mut parts, body) = request.into_parts();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                parts.uri = match format!("http://{addr}{path}").parse() {
                    Ok(uri) => uri,
                    Err(_) => return plain(StatusCode::BAD_REQUEST, "bad request path"),
                };
                match client.request(Request::from_parts(parts, body)).await {
                    Ok(response) => response.map(Body::new),
                    Err(e) => plain(
                        StatusCode::BAD_GATEWAY,
                        &format!("emulator unreachable: {e}"),
                    ),
                }
            }
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(text.to_owned()));
    *response.status_mut() = status;
    response
}

/// The error a front returns to make hyper close the connection unanswered.
#[derive(Debug)]
struct InjectedDrop;

impl std::fmt::Display for InjectedDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for InjectedDrop {}

/// One emulator's front: its faults and its upstream.
#[derive(Clone)]
pub(crate) struct Front {
    pub faults: Faults,
    pub upstream: Upstream,
    /// DynamoDB's front counts the capacity units of every call.
    pub capacity: Option<Capacity>,
    /// DynamoDB's front answers point-in-time recovery calls, which the emulators lack.
    pub backups: Option<Backups>,
}

impl Front {
    /// Serves connections on `listener` until `shutdown` turns true; over TLS when `tls` is
    /// given.
    pub(crate) async fn serve(
        self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let front = Arc::new(self);
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let front = front.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => front.connection(stream).await,
                            // A failed or stalled handshake only ends that connection.
                            Some(tls) => {
                                let handshake = tokio::time::timeout(TLS_HANDSHAKE, tls.accept(stream));
                                if let Ok(Ok(stream)) = handshake.await {
                                    front.connection(stream).await;
                                }
                            }
                        }
                    });
                }
            }
        }
    }

    /// Serves one connection's requests until it closes.
    async fn connection<S>(self: Arc<Self>, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |request: Request<Incoming>| {
            let front = self.clone();
            async move { front.handle(request).await }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
    }

    async fn handle(&self, request: Request<Incoming>) -> Result<Response<Body>, InjectedDrop> {
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("")
            .to_owned();
        let client = access_key_id(&request);
        let mut request = request.map(Body::new);
        let mut stream = None;
        if self.faults.needs_stream() {
            // A rule picks requests by stream: read the body, then pass it on unchanged.
            let (parts, body) = request.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            stream = RequestInfo::stream_of(&bytes);
            request = Request::from_parts(parts, Body::from(bytes));
        }
        let decision = self.faults.decide_for(&RequestInfo {
            operation: &operation,
            client: client.as_deref(),
            stream: stream.as_deref(),
        });
        if !decision.delay.is_zero() {
            tokio::time::sleep(decision.delay).await;
        }
        match decision.outcome {
            Outcome::Forward if Backups::handles(&operation) && self.backups.is_some() => {
                let backups = self.backups.as_ref().expect("checked above");
                Ok(backups.answer(&operation, request, &self.upstream).await)
            }
            Outcome::Forward => match &self.capacity {
                Some(capacity) => Ok(self.forward_counted(capacity, &operation, request).await),
                None => Ok(self.upstream.call(request).await),
            },
            Outcome::Hold(rule) => {
                while self.faults.is_active(rule) {
                    tokio::time::sleep(HOLD_POLL).await;
                }
                Err(InjectedDrop)
            }
            Outcome::Respond { status, error_type } => Ok(error_response(
                self.faults.service(),
                status,
                &error_type,
                "injected by kinesis-testkit",
            )),
            Outcome::Drop => Err(InjectedDrop),
            Outcome::FailEntries(fraction) => Ok(self.fail_entries(request, fraction).await),
        }
    }

    /// Forwards a DynamoDB request asking for its consumed capacity, counts the units, and
    /// answers as the emulator did (without the units, if the client did not ask for them).
    async fn forward_counted(
        &self,
        capacity: &Capacity,
        operation: &str,
        request: Request<Body>,
    ) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let Ok(bytes) = body.collect().await.map(|c| c.to_bytes()) else {
            return plain(StatusCode::BAD_REQUEST, "unreadable body");
        };
        let table = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
            v.get("TableName")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let (body, strip) = match Capacity::prepare(&bytes) {
            Some((body, strip)) => {
                parts.headers.remove(header::CONTENT_LENGTH);
                (Bytes::from(body), strip)
            }
            None => (bytes, false),
        };
        let response = self
            .upstream
            .call(Request::from_parts(parts, Body::from(body)))
            .await;
        let (mut parts, body) = response.into_parts();
        let Ok(bytes) = body.collect().await.map(|c| c.to_bytes()) else {
            return plain(StatusCode::BAD_GATEWAY, "unreadable emulator answer");
        };
        if operation == "DeleteTable"
            && parts.status.is_success()
            && let (Some(backups), Some(table)) = (&self.backups, table.as_deref())
        {
            backups.forget(table);
        }
        match capacity.count(
            operation,
            table.as_deref(),
            parts.status.as_u16(),
            &bytes,
            strip,
        ) {
            Some(body) => {
                // The body changed: its length and checksum no longer hold.
                parts.headers.remove(header::CONTENT_LENGTH);
                parts.headers.remove("x-amz-crc32");
                Response::from_parts(parts, Body::from(body))
            }
            None => Response::from_parts(parts, Body::from(bytes)),
        }
    }

    /// Forwards a PutRecords request without some of its entries and answers those entries
    /// with `ProvisionedThroughputExceededException`, as AWS does for a partial failure.
    async fn fail_entries(&self, request: Request<Body>, fraction: f64) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let Ok(bytes) = body.collect().await.map(|c| c.to_bytes()) else {
            return plain(StatusCode::BAD_REQUEST, "unreadable body");
        };
        let Ok(mut document) = serde_json::from_slice::<Value>(&bytes) else {
            // Not JSON (e.g. CBOR): let it through untouched.
            return self
                .upstream
                .call(Request::from_parts(parts, Body::from(bytes)))
                .await;
        };
        let Some(entries) = document.get_mut("Records").and_then(Value::as_array_mut) else {
            return self
                .upstream
                .call(Request::from_parts(parts, Body::from(bytes)))
                .await;
        };
        let failed: Vec<bool> = {
            let mut rng = rand::rng();
            entries
                .iter()
                .map(|_| rand::Rng::random_bool(&mut rng, fraction))
                .collect()
        };
        let injected = failed.iter().filter(|f| **f).count();
        if injected == 0 {
            return self
                .upstream
                .call(Request::from_parts(parts, Body::from(bytes)))
                .await;
        }
        self.faults.count_failed_entries(injected as u64);
        let original: Vec<Value> = std::mem::take(entries);
        let kept: Vec<Value> = original
            .into_iter()
            .zip(&failed)
            .filter(|(_, f)| !**f)
            .map(|(e, _)| e)
            .collect();

        let mut forwarded_results: Vec<Value> = Vec::new();
        let mut upstream_failed = 0u64;
        let mut encryption = None;
        if !kept.is_empty() {
            document["Records"] = Value::Array(kept);
            let body = Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
            parts.headers.remove(header::CONTENT_LENGTH);
            let response = self
                .upstream
                .call(Request::from_parts(parts, Body::from(body)))
                .await;
            if response.status() != StatusCode::OK {
                return response;
            }
            let Ok(bytes) = response.into_body().collect().await.map(|c| c.to_bytes()) else {
                return plain(StatusCode::BAD_GATEWAY, "unreadable emulator answer");
            };
            let Ok(answer) = serde_json::from_slice::<Value>(&bytes) else {
                return plain(StatusCode::BAD_GATEWAY, "emulator answer is not JSON");
            };
            upstream_failed = answer
                .get("FailedRecordCount")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            encryption = answer.get("EncryptionType").cloned();
            forwarded_results = answer
                .get("Records")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
        }
        let mut forwarded = forwarded_results.into_iter();
        let records: Vec<Value> = failed
            .iter()
            .map(|f| {
                if *f {
                    json!({
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "Rate exceeded for shard (injected by kinesis-testkit)"
                    })
                } else {
                    forwarded.next().unwrap_or_else(|| {
                        json!({"ErrorCode": "InternalFailure", "ErrorMessage": "missing result"})
                    })
                }
            })
            .collect();
        let mut answer = json!({
            "FailedRecordCount": upstream_failed + injected as u64,
            "Records": records,
        });
        if let Some(encryption) = encryption {
            answer["EncryptionType"] = encryption;
        }
        json_response(self.faults.service(), StatusCode::OK, &answer)
    }
}

pub(crate) fn json_response(service: Service, status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(serde_json::to_vec(value).unwrap_or_default()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(service.content_type()),
    );
    response
}

/// An error answer in the service's own JSON shape.
pub(crate) fn error_response(
    service: Service,
    status: u16,
    error_type: &str,
    message: &str,
) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(
        service,
        status,
        &json!({ "__type": error_type, "message": message }),
    );
    if let Some(code) = error_type
        .rsplit('#')
        .next()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        response.headers_mut().insert("x-amzn-errortype", code);
    }
    response
}
