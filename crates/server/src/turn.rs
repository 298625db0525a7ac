//! STUN/TURN: time-limited credentials in the TURN REST scheme (what coturn calls
//! `use-auth-secret`), the ICE configuration handed to clients, and an embedded TURN server.
//!
//! Username `"<expiry-unix>:<user>"`, password `base64(HMAC-SHA1(shared secret, username))`. The
//! same secret on the embedded server or on a coturn makes the same credentials valid on either.
//! `now` is always an argument.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use dyad_proto::http::{IceConfig, IceServer};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::error::{Result, ServerError};
use crate::turn_guard::{Guard, GuardedListener, GuardedRelayGenerator, PeerPolicy};
use crate::turn_tcp;
use webrtc_util::Conn;

/// Where clients find STUN/TURN, and the shared secret their credentials are made with.
#[derive(Debug, Clone)]
pub enum TurnConfig {
    /// The TURN server embedded in `dyad serve`.
    Embedded(EmbeddedTurnConfig),
    /// An external server (coturn with `use-auth-secret` and the same secret).
    External {
        /// `turn:` / `stun:` URLs handed to clients as they are.
        urls: Vec<String>,
        /// The shared secret (coturn's `static-auth-secret`).
        secret: Vec<u8>,
        /// How long issued credentials stay valid.
        ttl_secs: u64,
    },
}

/// Settings of the embedded TURN server.
#[derive(Debug, Clone)]
pub struct EmbeddedTurnConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// The address clients reach it at, and relays are advertised on.
    pub public_ip: IpAddr,
    /// TURN realm.
    pub realm: String,
    /// Shared secret for the REST credentials.
    pub secret: Vec<u8>,
    /// How long issued credentials stay valid.
    pub ttl_secs: u64,
    /// Internal networks relayed to anyway (loopback, private, link-local and the server's own
    /// addresses are refused as peers otherwise; see [`crate::turn_guard`]).
    pub allow_peers: Vec<ipnet::IpNet>,
    /// How many allocations one account may hold at once.
    pub allocations_per_user: usize,
    /// The UDP port (on `listen`'s address) of the second STUN address "Test my network"
    /// compares mappings with ([`crate::nat_test`]): `listen`'s port + 1 by default, `None`
    /// for none. `/v1/ice` lists it as `nat_test`.
    pub nat_test_port: Option<u16>,
}

/// The default allocation quota: a call needs one or two relays per device (one per address
/// family), and an ICE restart briefly holds the old ones too.
pub const DEFAULT_ALLOCATIONS_PER_USER: usize = 8;

impl EmbeddedTurnConfig {
    /// A server on `listen`, advertised at `public_ip`, with the default peer policy and quota.
    pub fn new(listen: SocketAddr, public_ip: IpAddr, secret: Vec<u8>, ttl_secs: u64) -> Self {
        EmbeddedTurnConfig {
            listen,
            public_ip,
            realm: "dyad".into(),
            secret,
            ttl_secs,
            allow_peers: Vec::new(),
            allocations_per_user: DEFAULT_ALLOCATIONS_PER_USER,
            nat_test_port: listen.port().checked_add(1).filter(|_| listen.port() != 0),
        }
    }
}

impl TurnConfig {
    fn secret(&self) -> &[u8] {
        match self {
            TurnConfig::Embedded(e) => &e.secret,
            TurnConfig::External { secret, .. } => secret,
        }
    }

    fn ttl_secs(&self) -> u64 {
        match self {
            TurnConfig::Embedded(e) => e.ttl_secs,
            TurnConfig::External { ttl_secs, .. } => *ttl_secs,
        }
    }
}

pub(crate) fn sign(secret: &[u8], rest_username: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC would only ever refuse.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(rest_username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Credentials for `username` valid until `now_unix + ttl_secs`: (REST username, password).
pub fn turn_credentials(
    secret: &[u8],
    username: &str,
    now_unix: u64,
    ttl_secs: u64,
) -> (String, String) {
    let rest_username = format!("{}:{username}", now_unix.saturating_add(ttl_secs));
    let password = sign(secret, &rest_username);
    (rest_username, password)
}

/// Checks REST credentials: well-formed, not expired at `now_unix`, and signed with `secret`.
/// Returns the user part of the username.
pub fn check_turn_credentials(
    secret: &[u8],
    rest_username: &str,
    password: &str,
    now_unix: u64,
) -> Result<String> {
    let (expiry, user) = rest_username
        .split_once(':')
        .ok_or_else(|| ServerError::Turn("username is not <expiry>:<user>".into()))?;
    let expiry: u64 = expiry
        .parse()
        .map_err(|_| ServerError::Turn("expiry is not a number".into()))?;
    if now_unix >= expiry {
        return Err(ServerError::Turn("credentials expired".into()));
    }
    // Compare MACs in constant time: verify_slice does.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return Err(ServerError::Turn("bad secret".into()));
    };
    mac.update(rest_username.as_bytes());
    let given = base64::engine::general_purpose::STANDARD
        .decode(password)
        .map_err(|_| ServerError::Turn("password is not base64".into()))?;
    mac.verify_slice(&given)
        .map_err(|_| ServerError::Turn("wrong password".into()))?;
    Ok(user.to_string())
}

/// The ICE configuration for `username` at `now_unix`: STUN and TURN URLs with fresh credentials.
pub fn ice_config(config: &TurnConfig, username: &str, now_unix: u64) -> IceConfig {
    let (user, credential) =
        turn_credentials(config.secret(), username, now_unix, config.ttl_secs());
    let ice_servers = match config {
        TurnConfig::Embedded(e) => {
            let host = SocketAddr::new(e.public_ip, e.listen.port());
            vec![
                IceServer {
                    urls: vec![format!("stun:{host}")],
                    username: None,
                    credential: None,
                },
                IceServer {
                    // TCP for networks that block UDP (browsers use it; webrtc-rs 0.17 skips
                    // it), relayed over UDP all the same.
                    urls: vec![
                        format!("turn:{host}?transport=udp"),
                        format!("turn:{host}?transport=tcp"),
                    ],
                    username: Some(user),
                    credential: Some(credential),
                },
            ]
        }
        TurnConfig::External { urls, .. } => {
            let (stun, turn): (Vec<String>, Vec<String>) =
                urls.iter().cloned().partition(|u| u.starts_with("stun:"));
            let mut servers = Vec::new();
            if !stun.is_empty() {
                servers.push(IceServer {
                    urls: stun,
                    username: None,
                    credential: None,
                });
            }
            if !turn.is_empty() {
                servers.push(IceServer {
                    urls: turn,
                    username: Some(user),
                    credential: Some(credential),
                });
            }
            servers
        }
    };
    let nat_test = match config {
        TurnConfig::Embedded(e) => e
            .nat_test_port
            .map(|port| format!("stun:{}", SocketAddr::new(e.public_ip, port))),
        TurnConfig::External { .. } => None,
    };
    IceConfig {
        ice_servers,
        ttl_secs: config.ttl_secs(),
        nat_test,
    }
}

/// "Now" in UNIX seconds, for the embedded server's expiry checks (a test passes its own).
pub type UnixClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock as a [`UnixClock`].
pub fn system_unix_clock() -> UnixClock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// The embedded server's authentication: a REST username is accepted while unexpired, and its
/// long-term key is derived from the password our secret gives it. A wrong password then fails
/// the message-integrity check inside the TURN server.
pub(crate) struct RestAuth {
    pub(crate) secret: Vec<u8>,
    pub(crate) now: UnixClock,
}

impl turn::auth::AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let expiry = username
            .split_once(':')
            .and_then(|(e, _)| e.parse::<u64>().ok())
            .ok_or_else(|| turn::Error::Other("username is not <expiry>:<user>".into()))?;
        if (self.now)() >= expiry {
            return Err(turn::Error::Other("credentials expired".into()));
        }
        let password = sign(&self.secret, username);
        Ok(turn::auth::generate_auth_key(username, realm, &password))
    }
}

/// A running embedded STUN/TURN server.
pub struct EmbeddedTurn {
    server: turn::server::Server,
    local: SocketAddr,
    guard: Arc<Guard>,
    /// Ends the TURN-over-TCP listener and its connections.
    stop_tcp: tokio::sync::watch::Sender<bool>,
    tcp: Option<SocketAddr>,
    nat_test: Option<SocketAddr>,
    streams: turn_tcp::TurnStreams,
}

impl std::fmt::Debug for EmbeddedTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedTurn")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl EmbeddedTurn {
    /// The UDP address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Datagrams dropped because of their peer address, and Allocate requests refused for the
    /// quota, so far.
    pub fn refused(&self) -> (u64, u64) {
        self.guard.refused()
    }

    /// The TCP address TURN over TCP is served on (the UDP one's, if it was free).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// The UDP address of the NAT test's second STUN port, if it was free.
    pub fn nat_test_addr(&self) -> Option<SocketAddr> {
        self.nat_test
    }

    /// Where other listeners hand over streams that speak TURN (TLS with ALPN `stun.turn` on
    /// the HTTPS port: [`crate::config::ServerConfig::turn_over_tls`]).
    pub fn streams(&self) -> turn_tcp::TurnStreams {
        self.streams.clone()
    }

    /// Stops it (allocations are closed).
    pub async fn close(self) {
        self.stop_tcp.send_replace(true);
        if let Err(e) = self.server.close().await {
            tracing::warn!("closing TURN server: {e}");
        }
    }
}

/// Starts the embedded STUN/TURN server (UDP) with the system clock.
pub async fn start_embedded_turn(config: EmbeddedTurnConfig) -> Result<EmbeddedTurn> {
    start_embedded_turn_with_clock(config, system_unix_clock()).await
}

/// Starts the embedded STUN/TURN server, judging credential expiry by `now`.
pub async fn start_embedded_turn_with_clock(
    config: EmbeddedTurnConfig,
    now: UnixClock,
) -> Result<EmbeddedTurn> {
    let socket = tokio::net::UdpSocket::bind(config.listen).await?;
    let local = socket.local_addr()?;
    let relay_bind = if config.listen.ip().is_unspecified() {
        config.listen.ip()
    } else {
        local.ip()
    };
    let mut own = vec![config.public_ip];
    if local.ip().is_unspecified() {
        // Listening on every address: each of this host's addresses is "the server's own".
        match webrtc_util::ifaces::ifaces() {
            Ok(list) => own.extend(list.iter().filter_map(|i| i.addr.map(|a| a.ip()))),
            Err(e) => tracing::warn!("TURN: this host's addresses not listed ({e}): only the public IP is refused as a peer"),
        }
    } else {
        own.push(local.ip());
    }
    let guard = Arc::new(Guard::new(
        PeerPolicy {
            allow: config.allow_peers.clone(),
            own,
        },
        config.allocations_per_user,
        config.realm.clone(),
        config.secret.clone(),
        now.clone(),
    ));
    // The server tells us when an allocation ends, so its account's quota is freed.
    let (ended_tx, mut ended_rx) =
        tokio::sync::mpsc::channel::<turn::allocation::AllocationInfo>(1024);
    let on_end = guard.clone();
    tokio::spawn(async move {
        while let Some(info) = ended_rx.recv().await {
            on_end.allocation_ended(&info.username, info.five_tuple.src_addr);
        }
    });
    let settings = TurnSettings {
        public_ip: config.public_ip,
        relay_bind,
        realm: config.realm.clone(),
        secret: config.secret.clone(),
        now,
        guard: guard.clone(),
        ended: ended_tx,
    };
    let server = settings.server(Arc::new(socket)).await?;
    // TURN over TCP on the same port, for networks that block UDP.
    let (stop_tcp, stopped) = tokio::sync::watch::channel(false);
    let listener = match tokio::net::TcpListener::bind(local).await {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!("TURN over TCP not served on {local}: {e}");
            None
        }
    };
    let tcp = listener.as_ref().and_then(|l| l.local_addr().ok());
    let nat_test = match config.nat_test_port {
        Some(port) => match tokio::net::UdpSocket::bind((local.ip(), port)).await {
            Ok(socket) => {
                let at = socket.local_addr().ok();
                tokio::spawn(crate::nat_test::serve(socket, stopped.clone()));
                at
            }
            Err(e) => {
                tracing::warn!("NAT test STUN port {port} not served: {e}");
                None
            }
        },
        None => None,
    };
    let (streams, handed) = tokio::sync::mpsc::channel(64);
    tokio::spawn(serve_streams(listener, handed, settings, stopped));
    Ok(EmbeddedTurn {
        server,
        local,
        guard,
        stop_tcp,
        tcp,
        nat_test,
        streams: turn_tcp::TurnStreams(streams),
    })
}

/// What each TURN server of the embedded one shares: the UDP one and one per TCP connection.
#[derive(Clone)]
struct TurnSettings {
    public_ip: IpAddr,
    relay_bind: IpAddr,
    realm: String,
    secret: Vec<u8>,
    now: UnixClock,
    guard: Arc<Guard>,
    ended: tokio::sync::mpsc::Sender<turn::allocation::AllocationInfo>,
}

impl TurnSettings {
    /// A TURN server reading `conn` (relays on UDP, guarded, with the REST credentials).
    async fn server(&self, conn: Arc<dyn Conn + Send + Sync>) -> Result<turn::server::Server> {
        turn::server::Server::new(turn::server::config::ServerConfig {
            conn_configs: vec![turn::server::config::ConnConfig {
                conn: Arc::new(GuardedListener {
                    inner: conn,
                    guard: self.guard.clone(),
                }),
                relay_addr_generator: Box::new(GuardedRelayGenerator {
                    relay_address: self.public_ip,
                    bind: self.relay_bind,
                    net: Arc::new(webrtc_util::vnet::net::Net::new(None)),
                    guard: self.guard.clone(),
                }),
            }],
            realm: self.realm.clone(),
            auth_handler: Arc::new(RestAuth {
                secret: self.secret.clone(),
                now: self.now.clone(),
            }),
            channel_bind_timeout: Duration::from_secs(0),
            alloc_close_notify: Some(self.ended.clone()),
        })
        .await
        .map_err(|e| ServerError::Turn(e.to_string()))
    }
}

/// Serves TURN-over-TCP connections from `listener` and streams handed over by other listeners
/// (TLS on the HTTPS port) until `stop`: each gets a TURN server of its own, closed (with its
/// allocations, which frees their quota) when the stream ends.
async fn serve_streams(
    listener: Option<tokio::net::TcpListener>,
    mut handed: tokio::sync::mpsc::Receiver<turn_tcp::TurnStream>,
    settings: TurnSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(turn_tcp::MAX_CONNECTIONS));
    loop {
        let accept = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        let (stream, local, peer): turn_tcp::TurnStream = tokio::select! {
            accepted = accept => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let Ok(local) = tcp.local_addr() else { continue };
                    (Box::new(tcp), local, peer)
                }
                Err(e) => {
                    tracing::debug!("TURN/TCP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(stream) = handed.recv() => stream,
            _ = stop.changed() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(
                "TURN/TCP: {peer} refused, {} connections open",
                turn_tcp::MAX_CONNECTIONS
            );
            continue;
        };
        let settings = settings.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let conn = Arc::new(turn_tcp::StreamConn::new(stream, local, peer));
            let server = match settings.server(conn.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("TURN/TCP server for {peer}: {e}");
                    return;
                }
            };
            tokio::select! {
                () = conn.ended() => {}
                _ = stop.changed() => {}
            }
            if let Err(e) = server.close().await {
                tracing::debug!("TURN/TCP server for {peer} closing: {e}");
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_match_coturn_rest_scheme() {
        // Computed independently: python3 -c "import hmac,hashlib,base64;
        // print(base64.b64encode(hmac.new(b'north-wind', b'1795000000:alice', hashlib.sha1).digest()))"
        let (u, p) = turn_credentials(b"north-wind", "alice", 1_794_996_400, 3600);
        assert_eq!(u, "1795000000:alice");
        assert_eq!(p, "eXerXd8KydW1BeXwYvlRVbZzJhs=");
        assert_eq!(
            check_turn_credentials(b"north-wind", &u, &p, 1_794_999_999)
                .ok()
                .as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn expired_wrong_and_malformed_credentials_are_refused() {
        let (u, p) = turn_credentials(b"s3cret", "bob", 1000, 60);
        assert!(check_turn_credentials(b"s3cret", &u, &p, 1059).is_ok());
        assert!(
            check_turn_credentials(b"s3cret", &u, &p, 1060).is_err(),
            "expiry is exclusive"
        );
        assert!(check_turn_credentials(b"other", &u, &p, 1000).is_err());
        assert!(
            check_turn_credentials(b"s3cret", "1060:mallory", &p, 1000).is_err(),
            "signature binds the user"
        );
        assert!(check_turn_credentials(b"s3cret", "bob", &p, 1000).is_err());
        assert!(check_turn_credentials(b"s3cret", &u, "not base64!", 1000).is_err());
    }

    #[test]
    fn ice_config_lists_stun_then_turn_with_credentials() {
        let cfg = TurnConfig::Embedded(EmbeddedTurnConfig::new(
            "0.0.0.0:3478".parse().expect("addr"),
            "192.0.2.1".parse().expect("ip"),
            b"k".to_vec(),
            600,
        ));
        let ice = ice_config(&cfg, "carol", 100);
        assert_eq!(
            ice.ice_servers[0].urls,
            vec!["stun:192.0.2.1:3478".to_string()]
        );
        assert_eq!(
            ice.ice_servers[1].urls,
            vec![
                "turn:192.0.2.1:3478?transport=udp".to_string(),
                "turn:192.0.2.1:3478?transport=tcp".to_string()
            ]
        );
        assert_eq!(ice.ice_servers[1].username.as_deref(), Some("700:carol"));
        assert_eq!(ice.ttl_secs, 600);
    }
}
