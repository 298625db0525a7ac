//! The client over TLS: `https://` sign-in and a `wss://` session against a real `dyad-server`
//! serving a self-signed certificate, and a clear refusal when the certificate is not trusted.

use dyad_call::engine::CallEvent;
use dyad_call::signal::ServerUrl;
use dyad_call::{CallError, ClientConfig};
use dyad_server::tls::TlsSettings;
use dyad_server::{ServerConfig, Store};

#[tokio::test]
async fn https_sign_in_and_wss_session_with_a_trusted_self_signed_certificate() {
    let issued =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let dir = std::env::temp_dir().join(format!("dyad-call-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, issued.cert.pem()).expect("write cert");
    std::fs::write(&key, issued.signing_key.serialize_pem()).expect("write key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config = ServerConfig {
        tls: Some(TlsSettings::from_pem_files(&cert, &key).expect("PEM")),
        ..ServerConfig::default()
    };
    let store = Store::open_in_memory().await.expect("store");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(dyad_server::run(listener, store, config, async {
        let _ = stopped.await;
    }));

    let url = format!("https://localhost:{port}");
    // Not trusted: the handshake fails and says so.
    let untrusted = ServerUrl::parse(&url).expect("valid URL");
    assert!(untrusted.is_tls());
    match dyad_call::signal::register(&untrusted, "tina", "tls password 1").await {
        Err(CallError::Unreachable(m)) => assert!(m.contains("TLS"), "{m}"),
        other => panic!("an untrusted certificate must fail the handshake: {other:?}"),
    }
    // Trusted: register over HTTPS, then the engine's WebSocket session over WSS.
    let trusted = untrusted
        .trusting(issued.cert.pem().as_bytes())
        .expect("a PEM certificate");
    assert_eq!(trusted.to_string(), url);
    let (handle, mut events) =
        dyad_call::start(ClientConfig::new(trusted, "tina", "tls password 1"))
            .await
            .expect("signs in over https and wss");
    match events.recv().await {
        Some(CallEvent::SignedIn { username, .. }) => assert_eq!(username, "tina"),
        other => panic!("expected SignedIn, got {other:?}"),
    }
    // Plain http to the TLS port is not mistaken for a server.
    let plain = ServerUrl::parse(&format!("http://127.0.0.1:{port}")).expect("valid URL");
    assert!(dyad_call::signal::login(&plain, "tina", "tls password 1")
        .await
        .is_err());
    handle.shutdown().await;
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(dir);
}
