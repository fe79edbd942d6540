//! The Firehose-style sink: a `RecordProcessor` that buffers each shard's records and writes
//! them as one file when the buffer is full or its time is up, then checkpoints.
//!
//! ```text
//!  process_records ─▶ buffer (data + '\n') ─(≥ size or ≥ interval)─▶ write file ─▶ checkpoint
//!                                                      OUTPUT/YYYY/MM/dd/HH/shard-first-last.jsonl[.gz]
//! ```
//!
//! The checkpoint follows the write, so a crash between the two re-delivers the batch (and it
//! is written again): nothing is lost, a record may appear twice. Local files are written to a
//! temporary name, fsynced, renamed and their directory fsynced; `object_store`'s local store
//! renames but does not fsync, so it is used for S3-compatible outputs only, where a completed
//! PUT is durable.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kinesis_consumer::{
    CheckpointError, Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError,
    RecordProcessor, ShardEndCheckpointer, ShardEnded,
};
use object_store::ObjectStore;
use serde_json::json;

use crate::audit::AuditLog;

/// Where batch files go.
#[derive(Debug, Clone)]
pub enum Output {
    /// A local folder.
    Local(PathBuf),
    /// An S3-compatible bucket and key prefix.
    Store {
        /// The bucket.
        store: Arc<dyn ObjectStore>,
        /// Key prefix inside it.
        prefix: String,
        /// How to show it, e.g. `s3://bucket/prefix`.
        display: String,
    },
}

/// A bad output location or a failed write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// `s3://` without a bucket, or the S3 client could not be configured.
    #[error("output {url:?}: {reason}")]
    BadOutput {
        /// What was given.
        url: String,
        /// Why it does not work.
        reason: String,
    },
    /// Writing a local file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing to the object store failed.
    #[error("writing {key}: {source}")]
    Store {
        /// The object key.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
}

impl Output {
    /// `s3://bucket/prefix` (credentials, region and endpoint from the standard `AWS_*`
    /// variables, e.g. `AWS_ENDPOINT_URL` for an S3-compatible server) or a local folder.
    pub fn parse(value: &str) -> Result<Output, SinkError> {
        let Some(rest) = value.strip_prefix("s3://") else {
            return Ok(Output::Local(PathBuf::from(value)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(SinkError::BadOutput {
                url: value.into(),
                reason: "no bucket".into(),
            });
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Ok(endpoint) =
            std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        {
            builder = builder
                .with_endpoint(endpoint.clone())
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| SinkError::BadOutput {
            url: value.into(),
            reason: e.to_string(),
        })?;
        Ok(Output::Store {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_owned(),
            display: value.to_owned(),
        })
    }

    /// Writes one file durably under `relative` (`YYYY/MM/dd/HH/name`).
    async fn write(&self, relative: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        match self {
            Output::Local(root) => {
                let path = root.join(relative);
                let bytes_path = path.clone();
                tokio::task::spawn_blocking(move || write_durably(&bytes_path, &bytes))
                    .await
                    .map_err(|e| SinkError::Io {
                        path: path.display().to_string(),
                        source: std::io::Error::other(e),
                    })?
                    .map_err(|source| SinkError::Io {
                        path: path.display().to_string(),
                        source,
                    })
            }
            Output::Store { store, prefix, .. } => {
                let key = if prefix.is_empty() {
                    relative.to_owned()
                } else {
                    format!("{prefix}/{relative}")
                };
                store
                    .put(&object_store::path::Path::from(key.as_str()), bytes.into())
                    .await
                    .map(|_| ())
                    .map_err(|source| SinkError::Store { key, source })
            }
        }
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Local(p) => write!(f, "{}", p.display()),
            Output::Store { display, .. } => f.write_str(display),
        }
    }
}

/// Temporary name, fsync, rename, fsync the directory: the file is whole or absent.
fn write_durably(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// One written file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Path relative to the output (`YYYY/MM/dd/HH/name`).
    pub name: String,
    /// Bytes written (compressed, with `gzip`).
    pub bytes: usize,
    /// Records in it.
    pub records: usize,
}

/// Sink settings.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Where files go.
    pub output: Output,
    /// Write when a shard's buffer holds this many bytes (default 5 MiB, as Firehose).
    pub buffer_bytes: usize,
    /// Write when a shard's oldest buffered record is this old (default 300 s, as Firehose).
    pub buffer_interval: Duration,
    /// Gzip each file (`.jsonl.gz`).
    pub gzip: bool,
    /// Where to append an audit line per processor event, if anywhere.
    pub audit: Option<AuditLog>,
}

/// What all sinks of a process wrote, for the demo's page and summary.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Records received (buffered or written).
    pub received: u64,
    /// Records in written files.
    pub written: u64,
    /// Files written, newest last.
    pub files: Vec<WrittenFile>,
    /// Records received per shard.
    pub per_shard: std::collections::BTreeMap<String, u64>,
    /// Latest `millis_behind_latest` per shard, as Kinesis reports it.
    pub lag_ms: std::collections::BTreeMap<String, i64>,
}

/// A sink for one shard. Make one per shard with [`Sink::factory`].
pub struct Sink {
    config: Arc<SinkConfig>,
    stats: Arc<Mutex<SinkStats>>,
    shard_id: String,
    buffer: Vec<u8>,
    records: usize,
    first: Option<(String, Instant)>,
    last_sequence: String,
    last_sub_sequence: u64,
}

impl Sink {
    /// A factory making a sink per shard, sharing settings and stats.
    pub fn factory(
        config: SinkConfig,
        stats: Arc<Mutex<SinkStats>>,
    ) -> impl Fn(&str) -> Sink + Send + Sync + 'static {
        let config = Arc::new(config);
        move |shard: &str| Sink {
            config: config.clone(),
            stats: stats.clone(),
            shard_id: shard.to_owned(),
            buffer: Vec::new(),
            records: 0,
            first: None,
            last_sequence: String::new(),
            last_sub_sequence: 0,
        }
    }

    fn audit(&self, event: &str, fields: serde_json::Value) {
        if let Some(audit) = &self.config.audit {
            audit.event(event, &self.shard_id, fields);
        }
    }

    /// Checkpoints at the last record handed to the sink, and audits it.
    async fn checkpoint(&self, checkpointer: &mut Checkpointer) -> Result<(), CheckpointError> {
        checkpointer.checkpoint().await?;
        self.audit(
            "checkpoint",
            json!({"seq": self.last_sequence, "sub": self.last_sub_sequence}),
        );
        Ok(())
    }

    fn due(&self) -> bool {
        self.buffer.len() >= self.config.buffer_bytes
            || self
                .first
                .as_ref()
                .is_some_and(|(_, at)| at.elapsed() >= self.config.buffer_interval)
    }

    /// Writes the buffer as one file. Returns whether anything was written.
    async fn flush(&mut self) -> Result<bool, SinkError> {
        let Some((first, _)) = self.first.take() else {
            return Ok(false);
        };
        let hour = chrono::Utc::now().format("%Y/%m/%d/%H");
        let extension = if self.config.gzip {
            "jsonl.gz"
        } else {
            "jsonl"
        };
        let name = format!(
            "{hour}/{}-{first}-{}.{extension}",
            self.shard_id, self.last_sequence
        );
        let body = std::mem::take(&mut self.buffer);
        let bytes = if self.config.gzip {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(&body)
                .and_then(|_| encoder.finish())
                .map_err(|source| SinkError::Io {
                    path: name.clone(),
                    source,
                })?
        } else {
            body
        };
        let size = bytes.len();
        self.config.output.write(&name, bytes).await?;
        let records = std::mem::take(&mut self.records);
        tracing::info!(file = %name, bytes = size, records, "batch file written");
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.written += records as u64;
        stats.files.push(WrittenFile {
            name,
            bytes: size,
            records,
        });
        Ok(true)
    }
}

impl RecordProcessor for Sink {
    async fn initialize(&mut self, input: InitializeInput) {
        self.audit("init", json!({"from": input.checkpoint.as_str()}));
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if self.config.audit.is_some() && !input.records.is_empty() {
            let records: Vec<_> = input
                .records
                .iter()
                .map(|r| {
                    json!([
                        r.sequence_number,
                        r.sub_sequence_number,
                        String::from_utf8_lossy(&r.data)
                    ])
                })
                .collect();
            self.audit("batch", json!({ "records": records }));
        }
        for record in &input.records {
            if self.first.is_none() {
                self.first = Some((record.sequence_number.clone(), Instant::now()));
            }
            self.buffer.extend_from_slice(&record.data);
            self.buffer.push(b'\n');
            self.records += 1;
            self.last_sequence.clone_from(&record.sequence_number);
            self.last_sub_sequence = record.sub_sequence_number;
        }
        {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.received += input.records.len() as u64;
            *stats.per_shard.entry(input.shard_id.clone()).or_default() +=
                input.records.len() as u64;
            if let Some(lag) = input.millis_behind_latest {
                stats.lag_ms.insert(input.shard_id.clone(), lag);
            }
        }
        if self.due() {
            // Only what is in a durable file is checkpointed.
            self.flush().await?;
            if let Err(e) = self.checkpoint(checkpointer).await {
                // The records are in a durable file already: failing the batch would deliver
                // it again and write it twice. The next checkpoint covers them; a lost lease
                // ends the shard here either way.
                if !e.is_retryable() {
                    return Err(e.into());
                }
                tracing::warn!(error = %e, "checkpoint failed; the next one covers these records");
            }
        }
        Ok(())
    }

    async fn shard_ended(
        &mut self,
        checkpointer: ShardEndCheckpointer,
    ) -> Result<ShardEnded, CheckpointError> {
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, "could not write the shard's last batch");
            // Not checkpointing the end means the shard is read again: nothing is lost.
            return Err(CheckpointError::InvalidPosition {
                sequence_number: self.last_sequence.clone(),
                sub_sequence_number: 0,
                reason: "the last batch could not be written",
            });
        }
        let ended = checkpointer.checkpoint().await?;
        self.audit("end", json!({}));
        Ok(ended)
    }

    async fn lease_lost(&mut self) {
        self.audit("lost", json!({}));
        // Another worker will read these records again from the last checkpoint.
        self.buffer.clear();
        self.records = 0;
        self.first = None;
    }

    async fn shutdown_requested(&mut self, checkpointer: &mut Checkpointer) {
        // Whether the handover checkpoint was written: if not (DynamoDB unreachable, the batch
        // not written), the next owner reads again from the last checkpoint that was.
        let checkpointed = match self.flush().await {
            Ok(_) => match self.checkpoint(checkpointer).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "checkpoint at shutdown failed");
                    false
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "could not write the last batch; it will be read again");
                false
            }
        };
        self.audit("shutdown", json!({ "checkpointed": checkpointed }));
    }
}

/// Every record line in the files under a local output, for checks and the headless summary.
pub fn read_local_lines(root: &std::path::Path) -> std::io::Result<Vec<Vec<u8>>> {
    let mut lines = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.to_string_lossy().to_string();
            let raw = std::fs::read(&path)?;
            let body = if name.ends_with(".gz") {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)?;
                out
            } else if name.ends_with(".jsonl") {
                raw
            } else {
                continue;
            };
            lines.extend(
                body.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
    Ok(lines)
}
