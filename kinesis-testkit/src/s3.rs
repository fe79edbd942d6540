//! An embedded S3-compatible server: `s3s-fs` (a bucket is a folder, an object a file) served
//! over HTTP on 127.0.0.1 by its own thread, so `s3://` outputs work with no account and no
//! other process. Clients sign with [`LocalS3::SECRET_KEY`] and any access key id (like the
//! embedded Kinesis and DynamoDB, which tell clients apart by their key ids);
//! [`LocalS3::object_store`] uses [`LocalS3::ACCESS_KEY`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use tokio::sync::watch;

use crate::local::TestkitError;

/// A running S3-compatible server over a local folder. Stops when dropped.
#[derive(Debug)]
pub struct LocalS3 {
    addr: SocketAddr,
    root: PathBuf,
    stop: watch::Sender<bool>,
}

impl LocalS3 {
    /// The access key id of the server's own clients ([`LocalS3::object_store`]); any other
    /// is accepted too.
    pub const ACCESS_KEY: &'static str = "local";
    /// The secret key every request must be signed with.
    pub const SECRET_KEY: &'static str = "local-secret";

    /// Serves the buckets under `root` (made if missing) on a free port of 127.0.0.1.
    pub fn start(root: impl Into<PathBuf>) -> Result<LocalS3, TestkitError> {
        let root = root.into();
        let failed = |reason: String| TestkitError::Start { reason };
        std::fs::create_dir_all(&root).map_err(|e| failed(format!("{}: {e}", root.display())))?;
        let fs = s3s_fs::FileSystem::new(&root)
            .map_err(|e| failed(format!("S3 over {}: {e:?}", root.display())))?;
        let service = {
            let mut builder = s3s::service::S3ServiceBuilder::new(fs);
            builder.set_auth(AnyAccessKey);
            builder.build()
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| TestkitError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| TestkitError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| TestkitError::Bind { addr, source })?;
        let (stop, mut stopped) = watch::channel(false);
        std::thread::Builder::new()
            .name("local-s3".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => return tracing::error!(error = %e, "embedded S3 runtime"),
                };
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        let socket = tokio::select! {
                            accepted = listener.accept() => match accepted {
                                Ok((socket, _)) => socket,
                                Err(_) => continue,
                            },
                            _ = stopped.changed() => return,
                        };
                        let service = service.clone();
                        tokio::spawn(async move {
                            let io = hyper_util::rt::TokioIo::new(socket);
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, service)
                                .await;
                        });
                    }
                });
            })
            .map_err(|e| failed(format!("embedded S3 thread: {e}")))?;
        Ok(LocalS3 { addr, root, stop })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The folder holding the buckets.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes bucket `name` if it does not exist.
    pub fn create_bucket(&self, name: &str) -> Result<(), TestkitError> {
        std::fs::create_dir_all(self.root.join(name)).map_err(|e| TestkitError::Start {
            reason: format!("bucket {name}: {e}"),
        })
    }

    /// An `object_store` client of bucket `bucket` on this server.
    pub fn object_store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, TestkitError> {
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region("us-east-1")
            .with_access_key_id(LocalS3::ACCESS_KEY)
            .with_secret_access_key(LocalS3::SECRET_KEY)
            .build()
            .map_err(|e| TestkitError::Start {
                reason: format!("S3 client: {e}"),
            })?;
        Ok(Arc::new(store))
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        // Only a signal: the server's thread winds itself down.
        let _ = self.stop.send(true);
    }
}

/// Accepts any access key id with [`LocalS3::SECRET_KEY`]: processes that sign with a key
/// id of their own (for the other emulators' per-client fault rules) reach the server too,
/// while a wrong secret is still refused.
struct AnyAccessKey;

#[async_trait::async_trait]
impl s3s::auth::S3Auth for AnyAccessKey {
    async fn get_secret_key(&self, _access_key: &str) -> s3s::S3Result<s3s::auth::SecretKey> {
        Ok(s3s::auth::SecretKey::from(LocalS3::SECRET_KEY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path as ObjectPath;

    #[tokio::test]
    async fn objects_round_trip_through_http_and_land_as_files() {
        let root = std::env::temp_dir().join(format!("testkit-s3-{}", std::process::id()));
        let s3 = LocalS3::start(&root).unwrap();
        s3.create_bucket("demo").unwrap();
        let store = s3.object_store("demo").unwrap();
        let path = ObjectPath::from("out/2026/12/05/a.jsonl");
        store.put(&path, "x\n".into()).await.unwrap();
        let got = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"x\n");
        assert_eq!(
            std::fs::read(root.join("demo/out/2026/12/05/a.jsonl")).unwrap(),
            b"x\n"
        );
        // Any key id with the secret is served; a wrong secret is refused.
        let client = |key: &str, secret: &str| {
            object_store::aws::AmazonS3Builder::new()
                .with_bucket_name("demo")
                .with_endpoint(s3.endpoint())
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(key)
                .with_secret_access_key(secret)
                .build()
                .unwrap()
        };
        assert!(
            client("worker-7", LocalS3::SECRET_KEY)
                .get(&path)
                .await
                .is_ok()
        );
        assert!(client("someone", "else").get(&path).await.is_err());
        drop(s3);
        let _ = std::fs::remove_dir_all(&root);
    }
}
