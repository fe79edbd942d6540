//! Writing one object: a single PUT, or a multipart upload above the threshold; each attempt
//! bounded by a timeout, retried with backoff for the retry duration.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kinesis_common::backoff::Backoff;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use crate::error::SinkError;

/// How objects are written.
#[derive(Debug, Clone)]
pub(crate) struct WritePolicy {
    pub retry_duration: Duration,
    pub attempt_timeout: Duration,
    pub multipart_threshold: usize,
    pub part_size: usize,
}

/// What writing one object took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub attempts: u32,
    pub multipart: bool,
}

/// Errors that another attempt cannot fix.
fn permanent(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::InvalidPath { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::NotImplemented
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::UnknownConfigurationKey { .. }
    )
}

/// Writes `bytes` as the object `key`, durably once this returns `Ok`.
pub(crate) async fn write_object(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    bytes: Bytes,
    policy: &WritePolicy,
) -> Result<Written, SinkError> {
    let path = Path::parse(key).map_err(|e| SinkError::Write {
        key: key.to_owned(),
        attempts: 0,
        source: e.into(),
    })?;
    let multipart = bytes.len() > policy.multipart_threshold;
    let mut retries = Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
        .with_deadline(policy.retry_duration)
        .start();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let attempt = async {
            if multipart {
                put_multipart(store, &path, bytes.clone(), policy.part_size).await
            } else {
                store
                    .put(&path, PutPayload::from_bytes(bytes.clone()))
                    .await
                    .map(|_| ())
            }
        };
        let error = match tokio::time::timeout(policy.attempt_timeout, attempt).await {
            Ok(Ok(())) => {
                return Ok(Written {
                    attempts,
                    multipart,
                });
            }
            Ok(Err(e)) => e,
            Err(_) => object_store::Error::Generic {
                store: "kinesis-sink",
                source: format!("no answer within {:?}", policy.attempt_timeout).into(),
            },
        };
        let delay = (!permanent(&error)).then(|| retries.next_delay()).flatten();
        let Some(delay) = delay else {
            return Err(SinkError::Write {
                key: key.to_owned(),
                attempts,
                source: error,
            });
        };
        tracing::warn!(key, attempts, error = %error, ?delay, "object write failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

async fn put_multipart(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    bytes: Bytes,
    part_size: usize,
) -> Result<(), object_store::Error> {
    let upload = store.put_multipart(path).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
    let mut offset = 0;
    while offset < bytes.len() {
        let end = (offset + part_size).min(bytes.len());
        writer.wait_for_capacity(4).await?;
        writer.put(bytes.slice(offset..end));
        offset = end;
    }
    writer.finish().await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn policy() -> WritePolicy {
        WritePolicy {
            retry_duration: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(1),
            multipart_threshold: 6 << 20,
            part_size: 5 << 20,
        }
    }

    #[tokio::test]
    async fn small_objects_in_one_put_large_ones_in_parts() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let small = Bytes::from(vec![1u8; 1000]);
        let w = write_object(&store, "a/small", small.clone(), &policy())
            .await
            .unwrap();
        assert_eq!((w.attempts, w.multipart), (1, false));
        let large: Bytes = (0..(13u32 << 20))
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let w = write_object(&store, "a/large", large.clone(), &policy())
            .await
            .unwrap();
        assert_eq!((w.attempts, w.multipart), (1, true));
        for (key, bytes) in [("a/small", small), ("a/large", large)] {
            let got = store
                .get(&Path::from(key))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(got, bytes, "{key}");
        }
    }

    #[tokio::test]
    async fn a_permanent_error_is_not_retried() {
        let dir = std::env::temp_dir().join(format!("kinesis-sink-ro-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&dir).unwrap());
        // `..` is not a valid path segment: refused at once, whatever the retry duration.
        let e = write_object(&store, "a/../b", Bytes::from_static(b"x"), &policy())
            .await
            .unwrap_err();
        assert!(matches!(e, SinkError::Write { attempts: 0, .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
