//! The Kinesis front over HTTPS (for the Java KPL, whose daemon speaks only TLS): the same
//! emulator answers on both endpoints, and a client that trusts the self-signed certificate
//! completes a handshake for 127.0.0.1 and reads what a plain-HTTP client wrote.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use kinesis_testkit::LocalAws;

#[tokio::test]
async fn https_endpoint_serves_the_same_emulator() {
    let aws = LocalAws::builder()
        .kinesis_tls_port(0)
        .start()
        .await
        .unwrap();
    aws.create_stream("over-tls", 3).await.unwrap();
    let url = aws.kinesis_tls_endpoint().expect("asked for TLS");
    let authority = url.strip_prefix("https://").unwrap().to_owned();

    let mut roots = rustls::RootCertStore::empty();
    let der = aws.kinesis_tls_certificate().unwrap().to_vec();
    roots.add(CertificateDer::from(der)).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(&authority).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake with the self-signed certificate");

    // The emulator wants a signature's shape, not a valid one.
    let body = r#"{"StreamName":"over-tls"}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.DescribeStreamSummary\r\n\
         X-Amz-Date: 20261203T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=local/20261203/us-east-1/kinesis/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=00\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"OpenShardCount\":3"), "{answer}");
    aws.shutdown().await;
}

#[tokio::test]
async fn no_tls_unless_asked() {
    let aws = LocalAws::start().await.unwrap();
    assert!(aws.kinesis_tls_endpoint().is_none());
    assert!(aws.kinesis_tls_certificate().is_none());
    aws.shutdown().await;
}

/// The HTTP client `kinesis-common` gives every SDK client (rustls on ring, no aws-lc) speaks
/// TLS and checks the server's certificate: a self-signed one nothing trusts is refused with
/// an error that says so, never accepted and never a panic.
#[tokio::test]
async fn sdk_clients_speak_tls_and_refuse_an_untrusted_certificate() {
    let aws = LocalAws::builder()
        .kinesis_tls_port(0)
        .start()
        .await
        .unwrap();
    let url = aws.kinesis_tls_endpoint().expect("asked for TLS");
    let kinesis = kinesis_common::client::ClientOptions::local(url, aws.dynamodb_endpoint())
        .without_sdk_retries()
        .kinesis()
        .await;
    let error = kinesis
        .list_streams()
        .send()
        .await
        .expect_err("a self-signed certificate is not trusted");
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(chain.contains("certificate"), "{chain}");
    aws.shutdown().await;
}
