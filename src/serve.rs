//! `dyad serve`: the signalling server (and, if asked, the embedded STUN/TURN server).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use dyad_server::turn::{EmbeddedTurnConfig, TurnConfig};
use dyad_server::{ServerConfig, Store};

/// Options of `dyad serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address for HTTP and WebSocket.
    #[arg(long, default_value = "127.0.0.1:8470")]
    listen: SocketAddr,
    /// SQLite database file (created if missing).
    #[arg(long, default_value = "dyad-server.db", conflicts_with = "memory")]
    db: PathBuf,
    /// Keep everything in memory (nothing survives a restart).
    #[arg(long)]
    memory: bool,
    /// Run the embedded STUN/TURN server on this UDP address (e.g. 0.0.0.0:3478).
    #[arg(long)]
    turn_listen: Option<SocketAddr>,
    /// The address clients reach the embedded TURN server at (default: the listen IP).
    #[arg(long)]
    turn_public_ip: Option<IpAddr>,
    /// Point clients at an external TURN/STUN server instead (repeatable), e.g.
    /// `turn:turn.example.org:3478?transport=udp`; it must use the same secret.
    #[arg(long = "turn-url")]
    turn_urls: Vec<String>,
    /// Shared TURN REST secret (coturn's static-auth-secret). Default: the DYAD_TURN_SECRET
    /// environment variable, else a random secret for this run (fine for the embedded server).
    #[arg(long, env = "DYAD_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// Relay to this internal network too (repeatable, CIDR, e.g. 10.0.0.0/8): by default the
    /// embedded TURN server refuses loopback, private, link-local and its own addresses as peers.
    #[arg(long = "turn-allow-peer", value_name = "CIDR")]
    turn_allow_peers: Vec<ipnet::IpNet>,
    /// How many TURN allocations one account may hold at once.
    #[arg(long, default_value_t = dyad_server::turn::DEFAULT_ALLOCATIONS_PER_USER)]
    turn_allocations_per_user: usize,
    /// Every account may call every other without accepting each other as contacts first (a
    /// private server whose users all know each other). Presence still needs accepted contacts.
    #[arg(long)]
    open_calls: bool,
    /// Lifetime of TURN credentials, seconds.
    #[arg(long, default_value_t = 3600)]
    turn_ttl: u64,
    /// Serve HTTPS/WSS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long a call waits for a party whose connection dropped (and, after a restart, for
    /// both parties to resume it) before it ends, ms.
    #[arg(long, default_value_t = 20_000)]
    reconnect_grace_ms: u64,
    /// Password attempts (login, register) allowed per minute from one source address and for
    /// one account, each also the burst (defaults 30 and 10). Raise for load tests only.
    #[arg(long)]
    auth_attempts_per_min: Option<f64>,
}

/// Prints a status line. Failing to print (stdout closed by whoever started us) is not a reason
/// to stop serving, so errors are ignored — `println!` would panic instead.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

fn random_secret() -> Result<Vec<u8>> {
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("random: {e}"))?;
    Ok(secret)
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: &ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("tokio runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: &ServeArgs) -> Result<()> {
    let store = if args.memory {
        Store::open_in_memory().await?
    } else {
        Store::open(&args.db)
            .await
            .with_context(|| format!("database {}", args.db.display()))?
    };
    let secret = match &args.turn_secret {
        Some(s) if !s.is_empty() => s.as_bytes().to_vec(),
        _ => random_secret()?,
    };
    let turn = match (args.turn_listen, args.turn_urls.is_empty()) {
        (Some(_), false) => bail!("--turn-listen and --turn-url exclude each other"),
        (Some(listen), true) => {
            let public_ip = args
                .turn_public_ip
                .unwrap_or(if listen.ip().is_unspecified() {
                    args.listen.ip()
                } else {
                    listen.ip()
                });
            let mut cfg = EmbeddedTurnConfig::new(listen, public_ip, secret, args.turn_ttl);
            cfg.allow_peers = args.turn_allow_peers.clone();
            cfg.allocations_per_user = args.turn_allocations_per_user;
            Some(TurnConfig::Embedded(cfg))
        }
        (None, false) => Some(TurnConfig::External {
            urls: args.turn_urls.clone(),
            secret,
            ttl_secs: args.turn_ttl,
        }),
        (None, true) => None,
    };
    let embedded = match &turn {
        Some(TurnConfig::Embedded(cfg)) => {
            let server = dyad_server::turn::start_embedded_turn(cfg.clone())
                .await
                .context("embedded TURN")?;
            match server.tcp_addr() {
                Some(tcp) => say(format_args!(
                    "dyad serve: STUN/TURN on udp {} and tcp {tcp}",
                    server.local_addr()
                )),
                None => say(format_args!(
                    "dyad serve: STUN/TURN on udp {} (tcp port taken: no TURN over TCP)",
                    server.local_addr()
                )),
            }
            Some(server)
        }
        _ => None,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(dyad_server::tls::TlsSettings::from_pem_files(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let where_ = if args.memory {
        "memory".to_string()
    } else {
        args.db.display().to_string()
    };
    say(format_args!(
        "dyad serve: {scheme}://{addr} (database: {where_})"
    ));
    // TURN over TLS on the HTTPS port (ALPN stun.turn), for networks that allow only TLS.
    let turn_over_tls = match (&embedded, &tls) {
        (Some(server), Some(_)) => {
            say(format_args!(
                "dyad serve: TURN over TLS on {addr} (ALPN stun.turn)"
            ));
            Some(server.streams())
        }
        _ => None,
    };
    let config = ServerConfig {
        turn,
        tls,
        turn_over_tls,
        open_calls: args.open_calls,
        router: dyad_server::router::RouterConfig {
            reconnect_grace_ms: args.reconnect_grace_ms,
        },
        throttle: match args.auth_attempts_per_min {
            Some(n) => dyad_server::throttle::ThrottleConfig {
                per_address_per_min: n,
                per_address_burst: n,
                per_account_per_min: n,
                per_account_burst: n,
            },
            None => dyad_server::throttle::ThrottleConfig::default(),
        },
        ..ServerConfig::default()
    };
    dyad_server::run(listener, store, config, shutdown_signal()).await?;
    if let Some(server) = embedded {
        server.close().await;
    }
    say(format_args!("dyad serve: stopped"));
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
