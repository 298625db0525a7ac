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
    /// Most simultaneous connections (devices) per user.
    pub max_connections_per_user: usize,
    /// Sustained messages per second allowed on one connection.
    pub rate_per_sec: u32,
    /// Burst of messages allowed above the sustained rate.
    pub rate_burst: u32,
    /// Messages queued for one connection before it counts as stuck and is closed.
    pub send_queue: usize,
    /// Call routing timers.
    pub router: RouterConfig,
    /// Where clients find STUN/TURN (`None`: no ICE servers are handed out).
    pub turn: Option<TurnConfig>,
    /// Serve HTTPS/WSS with this certificate instead of plain HTTP/WS.
    pub tls: Option<TlsSettings>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            ping_interval_ms: 15_000,
            idle_timeout_ms: 45_000,
            token_ttl_secs: 30 * 24 * 3600,
            max_connections_per_user: 8,
            rate_per_sec: 50,
            rate_burst: 100,
            send_queue: 256,
            router: RouterConfig::default(),
            turn: None,
            tls: None,
        }
    }
}
