//! The client behind an HTTP proxy, for real: a tinyproxy from Debian on loopback, and a
//! `dyad-server` with a self-signed certificate. Sign-in (HTTPS) and the session (WSS) go
//! through the proxy's CONNECT tunnel, named in code or by `HTTPS_PROXY`; with the proxy gone the
//! client says the proxy is unreachable instead of quietly going direct; `NO_PROXY` is honoured.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dyad_call::engine::CallEvent;
use dyad_call::signal::ServerUrl;
use dyad_call::{CallError, ClientConfig};

mod common;

/// A tinyproxy process that is killed when dropped.
struct Tinyproxy(Child);

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts tinyproxy on 127.0.0.1:`port` (CONNECT to any port, from loopback only), logging
/// each connection to `log`; waits until it accepts connections.
async fn tinyproxy(dir: &std::path::Path, port: u16) -> Tinyproxy {
    let log = dir.join("tinyproxy.log");
    let conf = dir.join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nAllow 127.0.0.1\n\
             LogFile \"{}\"\nLogLevel Connect\n",
            log.display()
        ),
    )
    .expect("write tinyproxy.conf");
    let child = match Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("cannot start tinyproxy ({e}): install it with scripts/install-deps.sh"),
    };
    let proxy = Tinyproxy(child);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return proxy;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tinyproxy did not start listening on {port}");
}

fn connects_logged(dir: &std::path::Path, target: &str) -> usize {
    std::fs::read_to_string(dir.join("tinyproxy.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("CONNECT {target}")))
        .count()
}

#[tokio::test]
async fn sign_in_and_session_go_through_an_http_proxy_and_fail_clearly_without_it() {
    let tls = common::tls_server("proxy").await;
    let (port, dir) = (tls.port, tls.dir.clone());
    let proxy_port = free_tcp_port();
    let proxy = tinyproxy(&dir, proxy_port).await;
    let proxy_url = format!("http://127.0.0.1:{proxy_port}");
    let target = format!("localhost:{port}");

    // Named in code: HTTPS sign-in and the WSS session, both tunnelled.
    let server = ServerUrl::parse(&format!("https://{target}"))
        .expect("valid URL")
        .trusting(tls.cert_pem.as_bytes())
        .expect("a PEM certificate")
        .through_proxy(Some(&proxy_url))
        .expect("a proxy URL");
    assert_eq!(server.proxy().as_deref(), Some(&*format!("{proxy_url}/")));
    let (handle, mut events) = dyad_call::start(ClientConfig::new(
        server.clone(),
        "petra",
        "proxy password 1",
    ))
    .await
    .expect("signs in over https and wss through the proxy");
    match events.recv().await {
        Some(CallEvent::SignedIn { username, .. }) => assert_eq!(username, "petra"),
        other => panic!("expected SignedIn, got {other:?}"),
    }
    let tunnels = connects_logged(&dir, &target);
    assert!(
        tunnels >= 2,
        "register/login and the WebSocket each open a CONNECT tunnel; the log has {tunnels}"
    );
    // The live session runs inside the tunnel: stopping the proxy ends it.
    drop(proxy);
    let lost = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Some(CallEvent::SignallingLost) | None => return,
                Some(_) => {}
            }
        }
    })
    .await;
    assert!(
        lost.is_ok(),
        "the session outlived the proxy: not tunnelled"
    );
    handle.shutdown().await;
    let proxy = tinyproxy(&dir, proxy_port).await;

    // From the environment, as curl reads it; NO_PROXY exempts the host.
    // The only test in this binary: no other thread reads the environment meanwhile.
    std::env::set_var("HTTPS_PROXY", &proxy_url);
    let from_env = ServerUrl::parse(&format!("https://{target}"))
        .expect("valid URL")
        .trusting(tls.cert_pem.as_bytes())
        .expect("a PEM certificate");
    assert_eq!(from_env.proxy().as_deref(), Some(&*format!("{proxy_url}/")));
    let before = connects_logged(&dir, &target);
    dyad_call::signal::login(&from_env, "petra", "proxy password 1")
        .await
        .expect("login through the proxy named by HTTPS_PROXY");
    assert_eq!(connects_logged(&dir, &target), before + 1);
    std::env::set_var("NO_PROXY", "localhost");
    let exempt = ServerUrl::parse(&format!("https://{target}")).expect("valid URL");
    assert_eq!(exempt.proxy(), None, "NO_PROXY=localhost");
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("HTTPS_PROXY");

    // The proxy gone: the client reports it, and does not go around it.
    drop(proxy);
    match dyad_call::signal::login(&server, "petra", "proxy password 1").await {
        Err(CallError::Unreachable(m)) => assert!(m.contains("proxy"), "{m}"),
        other => panic!("with the proxy down the login must fail, not go direct: {other:?}"),
    }
    // A proxy that is not http:// is refused up front.
    assert!(server
        .clone()
        .through_proxy(Some("socks5://127.0.0.1:1080"))
        .is_err());
}
