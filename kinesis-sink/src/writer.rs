//! Writing one object: a single PUT, or a multipart upload above the threshold; each attempt
//! bounded by a timeout, retried with backoff for the retry duration.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kinesis_common::backoff::Backoff;
use object_store::path::Path;
use object_store::{ObjectStore, WriteMultipart};

use crate::destination::Destination;
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

/// Writes `bytes` as the object `key` of `destination`, durably once this returns `Ok`.
pub(crate) async fn write_object(
    destination: &Destination,
    key: &str,
    bytes: Bytes,
    policy: &WritePolicy,
) -> Result<Written, SinkError> {
    let mut retries = Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
        .with_deadline(policy.retry_duration)
        .start();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let attempt = destination.put_once(
            key,
            bytes.clone(),
            policy.multipart_threshold,
            policy.part_size,
        );
        let error = match tokio::time::timeout(policy.attempt_timeout, attempt).await {
            Ok(Ok(multipart)) => {
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

/// Uploads `bytes` in parts of `part_size`.
pub(crate) async fn put_multipart(
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
        let dest = Destination::from(store.clone());
        let small = Bytes::from(vec![1u8; 1000]);
        let w = write_object(&dest, "a/small", small.clone(), &policy())
            .await
            .unwrap();
        assert_eq!((w.attempts, w.multipart), (1, false));
        let large: Bytes = (0..(13u32 << 20))
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let w = write_object(&dest, "a/large", large.clone(), &policy())
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
    async fn a_bad_key_is_not_retried() {
        let dest = Destination::from(Arc::new(InMemory::new()) as Arc<dyn ObjectStore>);
        // `..` is not a valid path segment: refused at once, whatever the retry duration.
        let e = write_object(&dest, "a/../b", Bytes::from_static(b"x"), &policy())
            .await
            .unwrap_err();
        assert!(matches!(e, SinkError::Write { attempts: 1, .. }), "{e}");
    }
}
