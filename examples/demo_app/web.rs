//! The demo's web page and its small JSON API.
//!
//! | route | does |
//! | --- | --- |
//! | `GET /` | the page (polls `/api/status` twice a second) |
//! | `GET /api/status` | counts, shards with lease owner, checkpoint, throttles and hottest key, workers, files |
//! | `POST /api/produce?count=N&size=B` | produces N records of about B bytes in the background |
//! | `POST /api/split` | splits the open shard with the widest hash range |
//! | `POST /api/workers/start`, `POST /api/workers/stop?index=I` | starts a worker, stops one gracefully |

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use kinesis_common::shard_map;
use serde_json::json;

use crate::Demo;

fn param(query: &Option<String>, name: &str) -> Option<String> {
    query.as_deref()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn status(State(demo): State<Arc<Demo>>) -> Response {
    let kinesis = demo.kinesis.clone();
    let shards = shard_map::list_shards(&kinesis, &demo.args.stream.as_str().into(), false)
        .await
        .unwrap_or_default();
    let leases = demo.leases().await;
    let throttles = demo.producer.throttles_by_shard();
    let hot_keys = demo.producer.hot_keys();
    let workers: Vec<_> = demo
        .workers
        .lock()
        .await
        .iter()
        .map(|w| json!({ "id": w.id, "running": w.running() }))
        .collect();
    let sink = demo.sink.stats();
    let recent = demo.sink.recent_objects();
    // No await from here on: the received lock is a plain mutex.
    let stats = demo.received.lock().unwrap_or_else(|e| e.into_inner());
    let shard_rows: Vec<_> = shards
        .iter()
        .map(|s| {
            let lease = leases.iter().find(|l| l.shard_id == s.shard_id());
            let hottest = hot_keys
                .iter()
                .find(|h| h.shard_id == s.shard_id())
                .and_then(|h| h.by_bytes.first());
            json!({
                "shard_id": s.shard_id(),
                "open": shard_map::is_open(s),
                "owner": lease.and_then(|l| l.owner.clone()),
                "checkpoint": lease.map(|l| l.checkpoint.to_string()).unwrap_or_else(|| "—".into()),
                "consumed": stats.per_shard.get(s.shard_id()).copied().unwrap_or(0),
                "lag_ms": stats.lag_ms.get(s.shard_id()).copied(),
                "throttles": throttles.get(s.shard_id()).copied().unwrap_or(0),
                "hot_key": hottest.map(|k| k.partition_key.clone()),
                "hot_key_share": hottest.map(|k| k.share),
            })
        })
        .collect();
    let producer = demo.producer_stats();
    let files: Vec<_> = recent
        .iter()
        .rev()
        .take(50)
        .map(|f| json!({ "name": f.key, "bytes": f.bytes, "records": f.records }))
        .collect();
    let body = json!({
        "at_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
        "produced": demo.counters.produced.load(Ordering::Relaxed),
        "acknowledged": demo.counters.acknowledged.load(Ordering::Relaxed),
        "failed": demo.counters.failed.load(Ordering::Relaxed),
        "requests": producer.requests,
        "throttled_requests": producer.throttled_requests,
        "bytes_put": producer.bytes_put,
        "shards": shard_rows,
        "workers": workers,
        "files": files,
        "files_total": sink.objects_written,
        "written": sink.records_written,
        "received": stats.records,
        "buffered_bytes": sink.buffered_bytes,
        "open_buffers": sink.open_buffers,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn produce(State(demo): State<Arc<Demo>>, RawQuery(query): RawQuery) -> Response {
    let count = param(&query, "count").and_then(|v| v.parse::<u64>().ok());
    let size = param(&query, "size")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100);
    let Some(count) = count.filter(|c| (1..=10_000_000).contains(c)) else {
        return text(StatusCode::BAD_REQUEST, "count must be 1 to 10,000,000");
    };
    if !(20..=1_000_000).contains(&size) {
        return text(
            StatusCode::BAD_REQUEST,
            "size must be 20 to 1,000,000 bytes",
        );
    }
    tokio::spawn(async move { demo.produce(count, size).await });
    text(
        StatusCode::ACCEPTED,
        format!("producing {count} records of {size} bytes"),
    )
}

async fn split(State(demo): State<Arc<Demo>>) -> Response {
    let kinesis = demo.kinesis.clone();
    let Ok(open) = kinesis_testkit::streams::open_shards(&kinesis, &demo.args.stream).await else {
        return text(StatusCode::BAD_GATEWAY, "could not list shards");
    };
    let Some(widest) = open
        .iter()
        .max_by_key(|s| s.ending_hash_key.0 - s.starting_hash_key.0)
    else {
        return text(StatusCode::CONFLICT, "no open shard");
    };
    match kinesis_testkit::streams::split_shard(&kinesis, &demo.args.stream, &widest.shard_id).await
    {
        Ok(_) => text(StatusCode::OK, format!("split {}", widest.shard_id)),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("split failed: {e}")),
    }
}

async fn start_worker(State(demo): State<Arc<Demo>>) -> Response {
    match demo.start_worker().await {
        Ok(id) => text(StatusCode::OK, format!("started {id}")),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not start a worker: {e}"),
        ),
    }
}

async fn stop_worker(State(demo): State<Arc<Demo>>, RawQuery(query): RawQuery) -> Response {
    let Some(index) = param(&query, "index").and_then(|v| v.parse::<usize>().ok()) else {
        return text(StatusCode::BAD_REQUEST, "index is required");
    };
    match demo.stop_worker(index).await {
        Some(id) => text(
            StatusCode::OK,
            format!("stopped {id}; its leases were handed over"),
        ),
        None => text(StatusCode::NOT_FOUND, "no such running worker"),
    }
}

/// The page and API.
pub(crate) fn router(demo: Arc<Demo>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/status", get(status))
        .route("/api/produce", post(produce))
        .route("/api/split", post(split))
        .route("/api/workers/start", post(start_worker))
        .route("/api/workers/stop", post(stop_worker))
        .with_state(demo)
}
