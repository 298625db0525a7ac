//! Server settings.

use crate::router::RouterConfig;
use crate::tls::TlsSettings;
use crate::turn::TurnConfig;

/// How the server behaves. `Default` is right for production; tests shorten the timers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Clients must send `ping` at least this often (announced in `welcome`).
    pub ping_interval_ms: u64,
    /// A connection silent for this long is closed; its device counts as offline.
    pub idle_timeout_ms: u64,
    /// How long a login token lives.
    pub token_ttl_secs: u64,
    /// How long a guest link stays usable unless its maker says otherwise.
    pub invite_ttl_secs: u64,
    /// How long the account a guest link opens lives (a call's worth, not a month).
    pub guest_ttl_secs: u64,
    /// How often expired login tokens are deleted.
    pub purge_interval_secs: u64,
    /// Most simultaneous connections (devices) per user.
    pub max_connections_per_user: usize,
    /// Sustained messages per second allowed on one connection.
    pub rate_per_sec: u32,
    /// Burst of messages allowed above the sustained rate.
    pub rate_burst: u32,
    /// Bytes queued for one connection before it counts as stuck (not reading) and is closed
    /// with 4013; the client reconnects and resyncs.
    pub send_queue_bytes: usize,
    /// A write to a connection that has not completed in this long drops the connection (a
    /// client that stopped reading cannot hold a task, a socket and its queue for ever).
    pub write_timeout_ms: u64,
    /// Time a client has to send its HTTP request head, and the body after it.
    pub request_timeout_ms: u64,
    /// Connections not yet authenticated, in total and per source address.
    pub admission: crate::accept::AdmissionLimits,
    /// Password attempts (login, register) per source address and per account.
    pub throttle: crate::throttle::ThrottleConfig,
    /// Call routing timers.
    pub router: RouterConfig,
    /// Where clients find STUN/TURN (`None`: no ICE servers are handed out).
    pub turn: Option<TurnConfig>,
    /// Every account may call every other directly, contacts or not (a private server whose
    /// users all know each other). Off: only accepted contacts, or people who let anyone call
    /// them (relayed). Presence needs accepted contacts either way.
    pub open_calls: bool,
    /// Serve HTTPS/WSS with this certificate instead of plain HTTP/WS.
    pub tls: Option<TlsSettings>,
    /// With `tls`: TLS clients asking for ALPN `stun.turn` on the HTTPS port go to this
    /// embedded TURN server (TURN over TLS on 443, for networks that allow nothing else), and
    /// `/v1/ice` lists `turns:<host the client reached>?transport=tcp`.
    pub turn_over_tls: Option<crate::turn_tcp::TurnStreams>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            ping_interval_ms: 15_000,
            idle_timeout_ms: 45_000,
            token_ttl_secs: 30 * 24 * 3600,
            invite_ttl_secs: 24 * 3600,
            guest_ttl_secs: 4 * 3600,
            purge_interval_secs: 3600,
            max_connections_per_user: 8,
            rate_per_sec: 50,
            rate_burst: 100,
            send_queue_bytes: 1 << 20,
            write_timeout_ms: 10_000,
            request_timeout_ms: 10_000,
            admission: crate::accept::AdmissionLimits::default(),
            throttle: crate::throttle::ThrottleConfig::default(),
            router: RouterConfig::default(),
            turn: None,
            open_calls: false,
            tls: None,
            turn_over_tls: None,
        }
    }
}
