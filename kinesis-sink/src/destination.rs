//! Where objects go: any `object_store` (S3 and S3-compatible servers, GCS, Azure, memory), or
//! a local folder written durably (`object_store`'s local store renames but does not fsync).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;

use crate::error::SinkError;

/// Where a [`Sink`](crate::Sink) writes its objects.
#[derive(Clone)]
#[non_exhaustive]
pub enum Destination {
    /// An object store, with a key prefix inside it (empty, or ending in `/`).
    Store {
        /// The store (for S3, one bucket).
        store: Arc<dyn ObjectStore>,
        /// Prepended to every key.
        prefix: String,
        /// How to show it, e.g. `s3://bucket/prefix`.
        display: String,
    },
    /// A local folder: each file is written under a temporary name, fsynced, renamed into
    /// place and its folder fsynced, so a file that exists is whole and survives a crash.
    Folder(PathBuf),
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Store { display, .. } => f.write_str(display),
            Destination::Folder(path) => write!(f, "{}", path.display()),
        }
    }
}

impl From<Arc<dyn ObjectStore>> for Destination {
    fn from(store: Arc<dyn ObjectStore>) -> Self {
        Destination::Store {
            store,
            prefix: String::new(),
            display: "object store".into(),
        }
    }
}

impl Destination {
    /// Keys under `prefix` (a folder path such as `run/`; empty for the store's root) in
    /// `store`, shown as `display`.
    pub fn in_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        display: impl Into<String>,
    ) -> Destination {
        let prefix = prefix.trim_matches('/');
        Destination::Store {
            store,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            display: display.into(),
        }
    }

    /// A local folder (made when the first object is written).
    pub fn folder(path: impl Into<PathBuf>) -> Destination {
        Destination::Folder(path.into())
    }

    /// `s3://bucket/prefix`, with credentials, region and endpoint from the standard `AWS_*`
    /// variables (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for an S3-compatible server,
    /// plain HTTP allowed for `http://` endpoints); anything else is a local folder.
    pub fn parse(value: &str) -> Result<Destination, SinkError> {
        let Some(rest) = value.strip_prefix("s3://") else {
            return Ok(Destination::folder(value));
        };
        let bad = |reason: String| SinkError::InvalidDestination {
            destination: value.to_owned(),
            reason,
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket".into()));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Ok(endpoint) =
            std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| bad(e.to_string()))?;
        Ok(Destination::in_store(Arc::new(store), prefix, value))
    }

    /// Writes one attempt of `bytes` as `key`; durable once `Ok`.
    pub(crate) async fn put_once(
        &self,
        key: &str,
        bytes: Bytes,
        multipart_threshold: usize,
        part_size: usize,
    ) -> Result<bool, object_store::Error> {
        match self {
            Destination::Store { store, prefix, .. } => {
                let path = object_store::path::Path::parse(format!("{prefix}{key}"))?;
                let multipart = bytes.len() > multipart_threshold;
                if multipart {
                    crate::writer::put_multipart(store, &path, bytes, part_size).await?;
                } else {
                    store.put(&path, bytes.into()).await?;
                }
                Ok(multipart)
            }
            Destination::Folder(root) => {
                object_store::path::Path::parse(key)?;
                let path = root.join(key);
                blocking(move || write_durably(&path, &bytes)).await?;
                Ok(false)
            }
        }
    }
}

impl Destination {
    /// Keys (without the destination's prefix) of every object under `prefix`.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<String>, object_store::Error> {
        use futures_util::TryStreamExt as _;
        match self {
            Destination::Store {
                store,
                prefix: root,
                ..
            } => {
                let path = object_store::path::Path::parse(format!("{root}{prefix}"))?;
                let metas: Vec<_> = store.list(Some(&path)).try_collect().await?;
                Ok(metas
                    .into_iter()
                    .filter_map(|m| {
                        m.location
                            .as_ref()
                            .strip_prefix(root.as_str())
                            .map(str::to_owned)
                    })
                    .collect())
            }
            Destination::Folder(root) => {
                let (root, prefix) = (root.clone(), prefix.to_owned());
                blocking(move || {
                    let mut keys = Vec::new();
                    let mut stack = vec![root.join(&prefix)];
                    while let Some(dir) = stack.pop() {
                        let Ok(entries) = std::fs::read_dir(&dir) else {
                            continue;
                        };
                        for entry in entries {
                            let path = entry?.path();
                            if path.is_dir() {
                                stack.push(path);
                            } else if let Ok(key) = path.strip_prefix(&root) {
                                let key = key.to_string_lossy().into_owned();
                                // Temporary files of writes in progress.
                                if !key.rsplit('/').next().unwrap_or_default().starts_with('.') {
                                    keys.push(key);
                                }
                            }
                        }
                    }
                    Ok(keys)
                })
                .await
            }
        }
    }

    /// The bytes of object `key`; `None` when it does not exist.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>, object_store::Error> {
        match self {
            Destination::Store { store, prefix, .. } => {
                let path = object_store::path::Path::parse(format!("{prefix}{key}"))?;
                match store.get(&path).await {
                    Ok(got) => Ok(Some(got.bytes().await?)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Destination::Folder(root) => {
                let path = root.join(key);
                blocking(move || match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                })
                .await
            }
        }
    }

    /// Whether object `key` exists.
    pub(crate) async fn exists(&self, key: &str) -> Result<bool, object_store::Error> {
        match self {
            Destination::Store { store, prefix, .. } => {
                let path = object_store::path::Path::parse(format!("{prefix}{key}"))?;
                match store.head(&path).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Destination::Folder(root) => {
                let path = root.join(key);
                blocking(move || Ok(path.is_file())).await
            }
        }
    }

    /// Deletes object `key` (nothing when it does not exist).
    pub(crate) async fn delete(&self, key: &str) -> Result<(), object_store::Error> {
        match self {
            Destination::Store { store, prefix, .. } => {
                let path = object_store::path::Path::parse(format!("{prefix}{key}"))?;
                match store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Destination::Folder(root) => {
                let path = root.join(key);
                blocking(move || match std::fs::remove_file(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e),
                })
                .await
            }
        }
    }
}

/// Runs file system work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, object_store::Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| object_store::Error::JoinError { source: e })?
        .map_err(|e| object_store::Error::Generic {
            store: "folder",
            source: Box::new(e),
        })
}

/// Writes `bytes` to `path` so that after a crash it is either absent or whole.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_folders() {
        assert!(
            matches!(Destination::parse("out/dir"), Ok(Destination::Folder(p)) if p == Path::new("out/dir"))
        );
        assert!(Destination::parse("s3://").is_err());
        match Destination::parse("s3://bucket/a/b/").unwrap() {
            Destination::Store {
                prefix, display, ..
            } => {
                assert_eq!(prefix, "a/b/");
                assert_eq!(display, "s3://bucket/a/b/");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_folder_gets_whole_files_and_no_leftovers() {
        let root = std::env::temp_dir().join(format!("kinesis-sink-dest-{}", std::process::id()));
        let dest = Destination::folder(&root);
        dest.put_once("a/b/c.jsonl", Bytes::from_static(b"x\n"), 1 << 30, 5 << 20)
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("a/b/c.jsonl")).unwrap(), b"x\n");
        let names: Vec<_> = std::fs::read_dir(root.join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let bad = dest
            .put_once("a/../x", Bytes::new(), 1 << 30, 5 << 20)
            .await;
        assert!(bad.is_err());
        let _ = std::fs::remove_dir_all(&root);
    }
}
