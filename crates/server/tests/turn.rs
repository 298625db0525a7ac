//! TURN with our REST credentials, for real: the embedded server and a coturn from Debian, each on
//! loopback, each allocating a relay with issued credentials (and carrying a datagram through it
//! both ways), each refusing expired and wrong credentials.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyad_server::turn::{start_embedded_turn_with_clock, turn_credentials, EmbeddedTurnConfig};
use dyad_server::turn_tcp::StreamConn;
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

const WAIT: Duration = Duration::from_secs(5);

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Allocates a relay on `server` with these credentials; returns the client (keep it alive) and
/// the relay connection.
async fn allocate(
    server: SocketAddr,
    realm: &str,
    user: &str,
    pass: &str,
) -> Result<(Client, impl Conn), String> {
    let conn = Arc::new(
        UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?,
    );
    allocate_on(conn, server, realm, user, pass, 100).await
}

/// Allocates a relay on `server` through `conn` (UDP, or a stream cut into messages).
async fn allocate_on(
    conn: Arc<dyn Conn + Send + Sync>,
    server: SocketAddr,
    realm: &str,
    user: &str,
    pass: &str,
    rto_in_ms: u16,
) -> Result<(Client, impl Conn), String> {
    let client = Client::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: user.into(),
        password: pass.into(),
        realm: realm.into(),
        software: "dyad-test".into(),
        rto_in_ms,
        conn,
        vnet: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    client.listen().await.map_err(|e| e.to_string())?;
    let relay = tokio::time::timeout(WAIT, client.allocate())
        .await
        .map_err(|_| "allocation timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((client, relay))
}

/// Sends a datagram out through the relay to a plain peer socket and one back, and checks both
/// arrive with the right content and addresses.
async fn relay_carries_traffic(relay: &impl Conn) {
    let peer = UdpSocket::bind("127.0.0.1:0").await.expect("peer");
    let relayed = relay.local_addr().expect("relayed address");
    relay
        .send_to(b"through the relay", peer.local_addr().expect("addr"))
        .await
        .expect("send via relay");
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .expect("peer receives")
        .expect("recv");
    assert_eq!(&buf[..n], b"through the relay");
    assert_eq!(
        from.port(),
        relayed.port(),
        "arrives from the relayed address"
    );
    peer.send_to(b"and back", relayed)
        .await
        .expect("peer sends");
    let (n, from) = tokio::time::timeout(WAIT, relay.recv_from(&mut buf))
        .await
        .expect("relay receives")
        .expect("recv");
    assert_eq!(&buf[..n], b"and back");
    assert_eq!(from, peer.local_addr().expect("addr"));
}

fn loopback_turn(secret: &[u8]) -> EmbeddedTurnConfig {
    let mut config = EmbeddedTurnConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        "127.0.0.1".parse().expect("ip"),
        secret.to_vec(),
        600,
    );
    config.realm = "dyad.test".into();
    config
}

/// Whether anything arrives on `conn` within half a second.
async fn silent(conn: &impl Conn) -> bool {
    let mut buf = [0u8; 64];
    tokio::time::timeout(Duration::from_millis(500), conn.recv_from(&mut buf))
        .await
        .is_err()
}

#[tokio::test]
async fn the_embedded_relay_refuses_internal_peers_but_joins_its_own_relays() {
    let secret = b"guard-secret".to_vec();
    let now = now_unix();
    // Default policy: loopback (where everything here lives) and the server's own address are
    // refused as peers.
    let server = start_embedded_turn_with_clock(loopback_turn(&secret), Arc::new(move || now))
        .await
        .expect("start");
    let addr = server.local_addr();
    let (user, pass) = turn_credentials(&secret, "alice", now, 600);
    let (_client, relay) = allocate(addr, "dyad.test", &user, &pass)
        .await
        .expect("allocation");
    let relayed = relay.local_addr().expect("relayed");

    // Out through the relay to a loopback service: never arrives.
    let service = UdpSocket::bind("127.0.0.1:0").await.expect("service");
    relay
        .send_to(
            b"to an internal service",
            service.local_addr().expect("addr"),
        )
        .await
        .expect("send via relay");
    assert!(
        silent(&service).await,
        "a loopback peer got a relayed datagram"
    );
    // And in: the loopback peer's datagram to the relayed address is not delivered.
    service
        .send_to(b"from inside", relayed)
        .await
        .expect("send");
    assert!(
        silent(&relay).await,
        "the client got a datagram from a loopback peer"
    );
    // The server's own TURN port is refused too (it is the server's own address).
    relay
        .send_to(b"to the server itself", addr)
        .await
        .expect("send");
    let mut dropped = 0;
    for _ in 0..40 {
        dropped = server.refused().0;
        if dropped >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dropped >= 3, "drops counted: {dropped}");

    // Two clients relayed through this same server reach each other's relay.
    let (bob_user, bob_pass) = turn_credentials(&secret, "bobby", now, 600);
    let (_bob_client, bob_relay) = allocate(addr, "dyad.test", &bob_user, &bob_pass)
        .await
        .expect("allocation");
    let bob_relayed = bob_relay.local_addr().expect("relayed");
    // Each side needs a permission for the other: sending creates it.
    relay
        .send_to(b"hello bob", bob_relayed)
        .await
        .expect("send");
    bob_relay
        .send_to(b"hello alice", relayed)
        .await
        .expect("send");
    relay
        .send_to(b"hello bob", bob_relayed)
        .await
        .expect("send");
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(WAIT, bob_relay.recv_from(&mut buf))
        .await
        .expect("bob hears alice through two relays")
        .expect("recv");
    assert_eq!((&buf[..n], from), (&b"hello bob"[..], relayed));
    let (n, from) = tokio::time::timeout(WAIT, relay.recv_from(&mut buf))
        .await
        .expect("alice hears bob")
        .expect("recv");
    assert_eq!((&buf[..n], from), (&b"hello alice"[..], bob_relayed));
    server.close().await;
}

#[tokio::test]
async fn an_account_holds_at_most_its_quota_of_allocations() {
    let secret = b"quota-secret".to_vec();
    let now = now_unix();
    let mut config = loopback_turn(&secret);
    config.allocations_per_user = 2;
    let server = start_embedded_turn_with_clock(config, Arc::new(move || now))
        .await
        .expect("start");
    let addr = server.local_addr();
    let (user, pass) = turn_credentials(&secret, "alice", now, 600);
    let (_c1, first) = allocate(addr, "dyad.test", &user, &pass)
        .await
        .expect("first");
    let (_c2, _second) = allocate(addr, "dyad.test", &user, &pass)
        .await
        .expect("second");
    let third = allocate(addr, "dyad.test", &user, &pass).await;
    assert!(
        third.as_ref().is_err_and(|e| e.contains("486")),
        "a third allocation is refused with 486: {:?}",
        third.as_ref().err()
    );
    // Fresh credentials for the same account don't reset the count.
    let (later_user, later_pass) = turn_credentials(&secret, "alice", now + 5, 600);
    assert!(allocate(addr, "dyad.test", &later_user, &later_pass)
        .await
        .is_err());
    // Another account is not affected, and naming alice with a wrong password neither counts
    // nor tells anything but "unauthorized".
    let (bob_user, bob_pass) = turn_credentials(&secret, "bobby", now, 600);
    let _bob = allocate(addr, "dyad.test", &bob_user, &bob_pass)
        .await
        .expect("bobby");
    let wrong = allocate(addr, "dyad.test", &user, "d3JvbmcgcGFzc3dvcmQ=").await;
    assert!(
        wrong.as_ref().is_err_and(|e| !e.contains("486")),
        "{:?}",
        wrong.as_ref().err()
    );
    // Once one ends (refresh to zero), alice may allocate again.
    first.close().await.expect("close");
    let mut again = None;
    for _ in 0..20 {
        if let Ok(a) = allocate(addr, "dyad.test", &user, &pass).await {
            again = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        again.is_some(),
        "the quota was freed when the allocation ended"
    );
    let (_, refused) = server.refused();
    assert!(refused >= 2, "{refused}");
    server.close().await;
}

/// Expired credentials and a wrong password must both be refused by the server at `addr`.
async fn assert_refuses_bad_credentials(addr: SocketAddr, secret: &[u8], user: &str, now: u64) {
    let (expired_user, expired_pass) = turn_credentials(secret, user, now - 700, 600);
    assert!(
        allocate(addr, "dyad.test", &expired_user, &expired_pass)
            .await
            .is_err(),
        "expired"
    );
    let (valid_user, _) = turn_credentials(secret, user, now, 600);
    assert!(
        allocate(addr, "dyad.test", &valid_user, "d3JvbmcgcGFzc3dvcmQ=")
            .await
            .is_err(),
        "wrong password"
    );
}

#[tokio::test]
async fn embedded_turn_allocates_with_issued_credentials_and_refuses_bad_ones() {
    let secret = b"embedded-secret".to_vec();
    let now = now_unix();
    let mut config = loopback_turn(&secret);
    // The peer below is on loopback, which the relay refuses unless told otherwise.
    config.allow_peers = vec!["127.0.0.0/8".parse().expect("net")];
    // The server's clock is fixed, so expiry is exact.
    let server = start_embedded_turn_with_clock(config, Arc::new(move || now))
        .await
        .expect("start");
    let addr = server.local_addr();

    let (user, pass) = turn_credentials(&secret, "alice", now, 600);
    let (client, relay) = allocate(addr, "dyad.test", &user, &pass)
        .await
        .expect("allocation");
    assert_eq!(
        relay.local_addr().expect("relayed").ip().to_string(),
        "127.0.0.1"
    );
    relay_carries_traffic(&relay).await;
    let _ = client.close().await;

    assert_refuses_bad_credentials(addr, &secret, "alice", now).await;
    let (other_user, other_pass) = turn_credentials(b"another secret", "alice", now, 600);
    assert!(
        allocate(addr, "dyad.test", &other_user, &other_pass)
            .await
            .is_err(),
        "other secret"
    );
    server.close().await;
}

/// Sends one STUN request built from `attrs` (plus, when `auth` is given, USERNAME, REALM,
/// NONCE and long-term MESSAGE-INTEGRITY) and returns the response.
async fn stun_request(
    sock: &UdpSocket,
    server: SocketAddr,
    method: stun::message::Method,
    mut attrs: Vec<Box<dyn stun::message::Setter>>,
    auth: Option<(&str, &str, &str, &str)>,
) -> stun::message::Message {
    use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
    use stun::message::{Message, MessageType, CLASS_REQUEST};
    use stun::textattrs::TextAttribute;
    let mut setters: Vec<Box<dyn stun::message::Setter>> = vec![
        Box::new(stun::agent::TransactionId::new()),
        Box::new(MessageType::new(method, CLASS_REQUEST)),
    ];
    setters.append(&mut attrs);
    if let Some((user, pass, realm, nonce)) = auth {
        setters.push(Box::new(TextAttribute::new(ATTR_USERNAME, user.into())));
        setters.push(Box::new(TextAttribute::new(ATTR_REALM, realm.into())));
        setters.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce.into())));
        setters.push(Box::new(
            stun::integrity::MessageIntegrity::new_long_term_integrity(
                user.into(),
                realm.into(),
                pass.into(),
            ),
        ));
    }
    setters.push(Box::new(stun::fingerprint::FINGERPRINT));
    let mut m = Message::new();
    m.build(&setters).expect("build");
    sock.send_to(&m.raw, server).await.expect("send");
    let mut buf = vec![0u8; 1500];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("a response")
        .expect("recv");
    let mut res = Message::new();
    res.raw = buf[..n].to_vec();
    res.decode().expect("decode");
    res
}

/// The lifetime cap: an allocation lives only as long as its credentials (plus what its last
/// refresh before they expired granted, at most the server's 1 h): every Refresh is
/// authenticated with the same REST username, whose expiry the server checks each time.
#[tokio::test]
async fn an_allocation_cannot_be_refreshed_past_its_credentials_expiry() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use stun::attributes::{ATTR_NONCE, ATTR_REALM};
    use stun::message::{
        CLASS_ERROR_RESPONSE, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE, METHOD_REFRESH,
    };
    use stun::textattrs::TextAttribute;
    use turn::proto::{lifetime::Lifetime, reqtrans::RequestedTransport, PROTO_UDP};
    let secret = b"lifetime-secret".to_vec();
    let start = now_unix();
    let clock = Arc::new(AtomicU64::new(start));
    let read = clock.clone();
    let server = start_embedded_turn_with_clock(
        loopback_turn(&secret),
        Arc::new(move || read.load(Ordering::SeqCst)),
    )
    .await
    .expect("start");
    let addr = server.local_addr();
    let (user, pass) = turn_credentials(&secret, "alice", start, 600);
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let transport = || -> Vec<Box<dyn stun::message::Setter>> {
        vec![Box::new(RequestedTransport {
            protocol: PROTO_UDP,
        })]
    };
    // The unauthenticated first try gets the realm and a nonce.
    let challenge = stun_request(&sock, addr, METHOD_ALLOCATE, transport(), None).await;
    let realm = TextAttribute::get_from_as(&challenge, ATTR_REALM)
        .expect("realm")
        .text;
    let nonce = TextAttribute::get_from_as(&challenge, ATTR_NONCE)
        .expect("nonce")
        .text;
    let auth = Some((user.as_str(), pass.as_str(), realm.as_str(), nonce.as_str()));
    let granted = stun_request(&sock, addr, METHOD_ALLOCATE, transport(), auth).await;
    assert_eq!(granted.typ.class, CLASS_SUCCESS_RESPONSE, "{granted}");
    let refresh = || -> Vec<Box<dyn stun::message::Setter>> {
        vec![Box::new(Lifetime(Duration::from_secs(600)))]
    };
    // Within the credentials' life a refresh extends the allocation...
    clock.store(start + 599, Ordering::SeqCst);
    let res = stun_request(&sock, addr, METHOD_REFRESH, refresh(), auth).await;
    assert_eq!(res.typ.class, CLASS_SUCCESS_RESPONSE, "{res}");
    // ... and once they have expired it is refused: the allocation runs out with its lifetime.
    clock.store(start + 600, Ordering::SeqCst);
    let res = stun_request(&sock, addr, METHOD_REFRESH, refresh(), auth).await;
    assert_eq!(res.typ.class, CLASS_ERROR_RESPONSE, "{res}");
    server.close().await;
}

/// A coturn process that is killed when dropped.
struct Coturn(Child);

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test]
async fn coturn_accepts_our_credentials_and_refuses_bad_ones() {
    let secret = "coturn-shared-secret";
    let port = free_udp_port();
    let relay_min = 40_000 + (port % 1000) * 20;
    let dir = std::env::temp_dir().join(format!("dyad-coturn-{port}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spawned = Command::new("turnserver")
        .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
        .arg(format!("--listening-port={port}"))
        .args([
            "--use-auth-secret",
            &format!("--static-auth-secret={secret}"),
            "--realm=dyad.test",
        ])
        .args([
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            "--fingerprint",
            "--no-tcp",
        ])
        .arg(format!("--min-port={relay_min}"))
        .arg(format!("--max-port={}", relay_min + 19))
        .arg(format!(
            "--pidfile={}",
            dir.join("turnserver.pid").display()
        ))
        .arg(format!("--userdb={}", dir.join("turndb").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(c) => c,
        Err(e) => {
            panic!("cannot start turnserver ({e}): install coturn with scripts/install-deps.sh")
        }
    };
    let _coturn = Coturn(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let now = now_unix();
    let (user, pass) = turn_credentials(secret.as_bytes(), "bob", now, 600);
    // coturn needs a moment to come up: retry for a bounded time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (client, relay) = loop {
        match allocate(addr, "dyad.test", &user, &pass).await {
            Ok(ok) => break ok,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing_note(&e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("coturn never allocated: {e}"),
        }
    };
    relay_carries_traffic(&relay).await;
    let _ = client.close().await;
    assert_refuses_bad_credentials(addr, secret.as_bytes(), "bob", now).await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn tracing_note(e: &str) {
    eprintln!("coturn not ready yet: {e}");
}

/// Allocates a relay over a TCP connection to the embedded server's TURN-over-TCP port.
async fn allocate_over_tcp(
    server: SocketAddr,
    user: &str,
    pass: &str,
) -> Result<(Client, impl Conn), String> {
    let stream = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let local = stream.local_addr().map_err(|e| e.to_string())?;
    let conn = Arc::new(StreamConn::new(stream, local, server));
    // No retransmissions over TCP: one attempt, a second of patience.
    allocate_on(conn, server, "dyad.test", user, pass, 1_000).await
}

#[tokio::test]
async fn turn_over_tcp_relays_over_udp_and_a_closed_connection_frees_its_quota() {
    let secret = b"tcp-secret".to_vec();
    let now = now_unix();
    let mut config = loopback_turn(&secret);
    config.allow_peers = vec!["127.0.0.0/8".parse().expect("net")];
    config.allocations_per_user = 1;
    let server = start_embedded_turn_with_clock(config, Arc::new(move || now))
        .await
        .expect("start");
    let tcp = server.tcp_addr().expect("TURN over TCP is served");
    assert_eq!(tcp, server.local_addr(), "on the UDP port's number");
    let (user, pass) = turn_credentials(&secret, "alice", now, 600);
    // The first connection runs through a forwarder the test can cut, as a network would.
    let forwarder = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let via = forwarder.local_addr().expect("addr");
    let cut = tokio::spawn(async move {
        let (mut inbound, _) = forwarder.accept().await.expect("accept");
        let mut outbound = tokio::net::TcpStream::connect(tcp).await.expect("connect");
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    });
    let (_client, relay) = allocate_over_tcp(via, &user, &pass)
        .await
        .expect("allocation over TCP");
    // Out to a UDP peer and back, through the TCP connection; then enough messages of odd sizes
    // that the channel is bound and ChannelData (padded to 4 bytes on TCP) carries them.
    relay_carries_traffic(&relay).await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.expect("peer");
    let peer_addr = peer.local_addr().expect("addr");
    let relayed = relay.local_addr().expect("relayed");
    let mut buf = [0u8; 64];
    for i in 0..6 {
        let out = format!("out {i}{}", "x".repeat(i));
        relay
            .send_to(out.as_bytes(), peer_addr)
            .await
            .expect("send");
        let (n, _) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
            .await
            .expect("peer receives")
            .expect("recv");
        assert_eq!(&buf[..n], out.as_bytes());
        let back = format!("back {i}{}", "y".repeat(i));
        peer.send_to(back.as_bytes(), relayed).await.expect("send");
        let (n, _) = tokio::time::timeout(WAIT, relay.recv_from(&mut buf))
            .await
            .expect("the client receives over TCP")
            .expect("recv");
        assert_eq!(&buf[..n], back.as_bytes());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The quota (1) is taken: a second connection of the same account is refused.
    assert!(allocate_over_tcp(tcp, &user, &pass).await.is_err());
    // The first connection is cut (no goodbye from the client): the server ends its
    // allocation and frees the quota.
    cut.abort();
    let mut again = Err(String::new());
    for _ in 0..20 {
        again = allocate_over_tcp(tcp, &user, &pass).await;
        if again.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_client, relay) = again.expect("allocation after the first connection closed");
    relay_carries_traffic(&relay).await;
    // Bytes that are not TURN end the connection.
    let mut junk = tokio::net::TcpStream::connect(tcp).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, junk.read(&mut buf))
        .await
        .expect("the server closes it");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    server.close().await;
}

/// A TLS connection to `addr` trusting `trusted`, asking for `alpn`.
async fn tls_to(
    addr: SocketAddr,
    trusted: &rustls::pki_types::CertificateDer<'static>,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).expect("trust the certificate");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

#[tokio::test]
async fn turn_over_tls_shares_the_https_port_and_is_listed_under_the_name_the_client_used() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let secret = b"tls-turn-secret".to_vec();
    let now = now_unix();
    let mut turn_config = loopback_turn(&secret);
    turn_config.allow_peers = vec!["127.0.0.0/8".parse().expect("net")];
    let turn = start_embedded_turn_with_clock(turn_config.clone(), Arc::new(move || now))
        .await
        .expect("start TURN");
    let issued =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let dir = std::env::temp_dir().join(format!("dyad-turn-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, issued.cert.pem()).expect("write cert");
    std::fs::write(&key, issued.signing_key.serialize_pem()).expect("write key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let https = listener.local_addr().expect("addr");
    let store = dyad_server::Store::open_in_memory().await.expect("store");
    let hash = dyad_server::store::hash_password("a password").expect("hash");
    let token = store
        .provision_users(&["alice".to_string()], &hash, now, 600)
        .await
        .expect("account")
        .remove(0);
    let config = dyad_server::ServerConfig {
        tls: Some(dyad_server::tls::TlsSettings::from_pem_files(&cert, &key).expect("PEM")),
        turn: Some(dyad_server::turn::TurnConfig::Embedded(turn_config)),
        turn_over_tls: Some(turn.streams()),
        ..dyad_server::ServerConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(dyad_server::run(listener, store, config, async {
        let _ = stopped.await;
    }));

    // HTTPS on the port still answers, and lists turns: under the name asked for.
    let mut http = tls_to(https, issued.cert.der(), b"http/1.1").await;
    let host = format!("localhost:{}", https.port());
    let req = format!(
        "GET /v1/ice HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    http.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let _ = http.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains(&format!("\"turns:{host}?transport=tcp\"")),
        "{text}"
    );

    // TURN over TLS on the same port: an allocation, relayed over UDP both ways.
    let (user, pass) = turn_credentials(&secret, "alice", now, 600);
    let tls = tls_to(https, issued.cert.der(), b"stun.turn").await;
    let local = tls.get_ref().0.local_addr().expect("addr");
    let conn = Arc::new(StreamConn::new(tls, local, https));
    let (_client, relay) = allocate_on(conn, https, "dyad.test", &user, &pass, 1_000)
        .await
        .expect("allocation over TLS");
    relay_carries_traffic(&relay).await;
    let _ = stop.send(());
    turn.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
