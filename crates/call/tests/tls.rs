//! The client over TLS: `https://` sign-in and a `wss://` session against a real `dyad-server`
//! serving a self-signed certificate, and a clear refusal when the certificate is not trusted.

use dyad_call::engine::CallEvent;
use dyad_call::signal::ServerUrl;
use dyad_call::{CallError, ClientConfig};

mod common;

#[tokio::test]
async fn https_sign_in_and_wss_session_with_a_trusted_self_signed_certificate() {
    let server = common::tls_server("tls").await;
    let port = server.port;
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
        .trusting(server.cert_pem.as_bytes())
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
}
