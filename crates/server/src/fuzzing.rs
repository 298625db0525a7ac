//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; never in a normal build).
//!
//! The embedded TURN server's per-datagram path as [`crate::turn::start_embedded_turn`] sets it
//! up: turn's `Request::handle_request` with our REST-credential [`AuthHandler`] and a static
//! relay address, answering over a real UDP socket on loopback (relays on a virtual network). One [`Turn`] is one fresh server
//! (allocations, nonces), so a fuzz input — a sequence of datagrams — runs the same way every
//! time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use turn::allocation::allocation_manager::{Manager, ManagerConfig};
use turn::auth::AuthHandler;
use turn::relay::relay_static::RelayAddressGeneratorStatic;
use turn::server::request::Request;

use crate::turn::RestAuth;

/// The realm the fuzz seeds sign their credentials for.
pub const REALM: &str = "dyad.fuzz";
/// The shared secret the fuzz seeds sign with.
pub const SECRET: &[u8] = b"fuzz-secret";
/// "Now" for credential expiry, UNIX seconds.
pub const NOW_UNIX: u64 = 1_800_000_000;
/// A nonce the server knows from the start, so seeded requests with valid credentials get past
/// the nonce check (a real client first learns one from a 401).
pub const NONCE: &str = "fuzz-nonce-0123456789";

/// A fresh embedded TURN server's request state.
pub struct Turn {
    conn: Arc<tokio::net::UdpSocket>,
    manager: Arc<Manager>,
    nonces: Arc<tokio::sync::Mutex<HashMap<String, tokio::time::Instant>>>,
    auth: Arc<dyn AuthHandler + Send + Sync>,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").finish_non_exhaustive()
    }
}

impl Turn {
    /// A server answering from `conn` (a loopback UDP socket), relaying on 127.0.0.1.
    pub fn new(conn: Arc<tokio::net::UdpSocket>) -> Self {
        let manager = Arc::new(Manager::new(ManagerConfig {
            relay_addr_generator: Box::new(RelayAddressGeneratorStatic {
                relay_address: std::net::Ipv4Addr::LOCALHOST.into(),
                address: "127.0.0.1".into(),
                // Relays live on a virtual network: what fuzzed requests relay to fuzzed peer
                // addresses never leaves the process (loopback has other people's sockets).
                net: Arc::new(webrtc_util::vnet::net::Net::new(Some(
                    webrtc_util::vnet::net::NetConfig::default(),
                ))),
            }),
            alloc_close_notify: None,
        }));
        let mut nonces = HashMap::new();
        nonces.insert(NONCE.to_string(), tokio::time::Instant::now());
        Turn {
            conn,
            manager,
            nonces: Arc::new(tokio::sync::Mutex::new(nonces)),
            auth: Arc::new(RestAuth {
                secret: SECRET.to_vec(),
                now: Arc::new(|| NOW_UNIX),
            }),
        }
    }

    /// One datagram from `src`, as the server's read loop hands it over.
    pub async fn datagram(&self, src: SocketAddr, datagram: &[u8]) {
        let mut r = Request {
            conn: Arc::clone(&self.conn) as _,
            src_addr: src,
            buff: datagram.to_vec(),
            allocation_manager: Arc::clone(&self.manager),
            nonces: Arc::clone(&self.nonces),
            auth_handler: Arc::clone(&self.auth),
            realm: REALM.into(),
            // What start_embedded_turn's zero becomes inside turn's server.
            channel_bind_timeout: Duration::from_secs(600),
        };
        let _ = r.handle_request().await;
    }

    /// Closes every allocation (their relay sockets and timers).
    pub async fn close(self) {
        let _ = self.manager.close().await;
    }
}

/// The REST credential check the HTTP side and coturn share, on arbitrary text.
pub fn check_credentials(rest_username: &str, password: &str) {
    let _ = crate::turn::check_turn_credentials(SECRET, rest_username, password, NOW_UNIX);
}

/// The embedded TURN server's guard (`turn_guard.rs`) as its two sockets use it: the Allocate
/// check on every datagram from a client (STUN parse, USERNAME/REALM, MESSAGE-INTEGRITY, the
/// quota and the 486 answer), the success responses and allocation ends that move the quota,
/// and the peer filter on any address.
pub struct Guard(Arc<crate::turn_guard::Guard>);

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard with `quota` allocations per account, no allowed networks, own address 198.51.100.1
    /// with live relay ports 50 000–50 009.
    pub fn new(quota: usize) -> Self {
        let guard = crate::turn_guard::Guard::new(
            crate::turn_guard::PeerPolicy {
                allow: Vec::new(),
                own: vec![std::net::Ipv4Addr::new(198, 51, 100, 1).into()],
            },
            quota,
            REALM.into(),
            SECRET.to_vec(),
            Arc::new(|| NOW_UNIX),
        );
        for port in 50_000..50_010 {
            guard.relay_opened(port);
        }
        Guard(Arc::new(guard))
    }

    /// A datagram from `client` to the listening socket: the 486 answer if the guard refuses it.
    pub fn datagram(&self, client: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
        if datagram.starts_with(&crate::turn_guard::ALLOCATE_REQUEST) {
            self.0.judge_allocate(datagram, client)
        } else {
            None
        }
    }

    /// The server answered `client`'s Allocate with success.
    pub fn granted(&self, client: SocketAddr) {
        self.0.allocations().granted(client);
    }

    /// `client`'s allocation under `rest_username` ended.
    pub fn ended(&self, rest_username: &str, client: SocketAddr) {
        self.0.allocation_ended(rest_username, client);
    }

    /// How many allocations the account in `rest_username` holds.
    pub fn held(&self, rest_username: &str) -> usize {
        self.0
            .allocations()
            .held(crate::turn_guard::rest_user(rest_username))
    }

    /// Whether a relay may exchange datagrams with `peer`.
    pub fn permits(&self, peer: SocketAddr) -> bool {
        self.0.permits(peer)
    }
}
