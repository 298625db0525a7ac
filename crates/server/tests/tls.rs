//! HTTPS and WSS with a certificate from PEM files: a client that trusts only that certificate
//! registers over HTTPS and opens a WebSocket session over TLS; plain HTTP to the TLS port and
//! bad PEM files fail clearly.

use std::sync::Arc;

use dyad_proto::ServerMessage;
use dyad_server::tls::TlsSettings;
use dyad_server::{ServerConfig, Store};
use futures_util::StreamExt;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

async fn tls_connect(
    addr: std::net::SocketAddr,
    trusted: &rustls::pki_types::CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(trusted.clone())
        .expect("trust the test certificate");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

#[tokio::test]
async fn https_and_wss_with_a_pem_certificate() {
    let issued =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let dir = std::env::temp_dir().join(format!("dyad-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, issued.cert.pem()).expect("write cert");
    std::fs::write(&key_path, issued.signing_key.serialize_pem()).expect("write key");
    let tls = TlsSettings::from_pem_files(&cert_path, &key_path).expect("load PEM");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let store = Store::open_in_memory().await.expect("store");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ServerConfig {
        tls: Some(tls),
        ..ServerConfig::default()
    };
    let server = tokio::spawn(dyad_server::run(listener, store, config, async {
        let _ = stopped.await;
    }));

    // HTTPS: register.
    let mut https = tls_connect(addr, issued.cert.der()).await;
    let body = r#"{"username":"alice","password":"over tls please"}"#;
    let req = format!("POST /v1/register HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    https.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let _ = https.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    let json = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let token = serde_json::from_str::<serde_json::Value>(json).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();

    // WSS: a session.
    let wss = tls_connect(addr, issued.cert.der()).await;
    let url = format!("wss://localhost/v1/ws?device=laptop&token={token}");
    let (mut ws, _) = tokio_tungstenite::client_async(url, wss)
        .await
        .expect("websocket over TLS");
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("frame");
    let Message::Text(t) = first else {
        panic!("{first:?}")
    };
    assert!(
        matches!(
            serde_json::from_str(&t).expect("json"),
            ServerMessage::Welcome { .. }
        ),
        "{t}"
    );

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        plain.read_to_end(&mut buf),
    )
    .await;
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "plain HTTP must not be served"
    );

    drop(ws);
    let _ = stop.send(());
    server.await.expect("join").expect("server ran");

    // Files that are not PEM are a clear configuration error.
    std::fs::write(&key_path, "not a key").expect("write");
    let err = TlsSettings::from_pem_files(&cert_path, &key_path).expect_err("bad key");
    assert!(err.to_string().contains("key"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
