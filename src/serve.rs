//! `dyad serve`: the signalling server (and, if asked, the embedded STUN/TURN server).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use dyad_server::turn::{EmbeddedTurnConfig, TurnConfig};
use dyad_server::{ServerConfig, Store};

/// Options of `dyad serve`. Each may also come from `--config FILE` (a TOML file, keys in
/// [`ServeFile`]); one given on the command line wins over the file.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// A TOML file with these settings (contrib/dyad.toml shows every key).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address for HTTP and WebSocket [default: 127.0.0.1:8470].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// SQLite database file, created if missing [default: dyad-server.db, or dyad-server.db in
    /// the config file's data_dir].
    #[arg(long, conflicts_with = "memory")]
    db: Option<PathBuf>,
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
    /// environment variable, else the config file's turn.secret_file, else a random secret for
    /// this run (fine for the embedded server).
    #[arg(long, env = "DYAD_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// Relay to this internal network too (repeatable, CIDR, e.g. 10.0.0.0/8): by default the
    /// embedded TURN server refuses loopback, private, link-local and its own addresses as peers.
    #[arg(long = "turn-allow-peer", value_name = "CIDR")]
    turn_allow_peers: Vec<ipnet::IpNet>,
    /// How many TURN allocations one account may hold at once [default: 8].
    #[arg(long)]
    turn_allocations_per_user: Option<usize>,
    /// Every account may call every other without accepting each other as contacts first (a
    /// private server whose users all know each other). Presence still needs accepted contacts.
    #[arg(long)]
    open_calls: bool,
    /// Lifetime of TURN credentials, seconds [default: 86400]. A relayed call lasts at most about
    /// this long: the relay checks the expiry on every refresh, and the apps fetch credentials
    /// once per call.
    #[arg(long)]
    turn_ttl: Option<u64>,
    /// Serve HTTPS/WSS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long a call waits for a party whose connection dropped (and, after a restart, for
    /// both parties to resume it) before it ends, ms [default: 20000].
    #[arg(long)]
    reconnect_grace_ms: Option<u64>,
    /// Password attempts (login, register) allowed per minute from one source address and for
    /// one account, each also the burst (defaults 30 and 10). Raise for load tests only.
    #[arg(long)]
    auth_attempts_per_min: Option<f64>,
}

/// `dyad serve --config FILE`: the same settings as the flags, for an operator's
/// `/etc/dyad/dyad.toml`. Unknown keys are an error, not ignored: a typo must not silently
/// leave a default in place.
#[derive(serde::Deserialize, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    /// `--listen`.
    listen: Option<SocketAddr>,
    /// Where the database lives (`<data_dir>/dyad-server.db`), unless `db` names the file.
    data_dir: Option<PathBuf>,
    /// `--db`.
    db: Option<PathBuf>,
    /// `--open-calls`.
    open_calls: Option<bool>,
    /// `--reconnect-grace-ms`.
    reconnect_grace_ms: Option<u64>,
    /// `--auth-attempts-per-min`.
    auth_attempts_per_min: Option<f64>,
    /// `--tls-cert` and `--tls-key`.
    tls: Option<TlsFile>,
    /// The TURN settings.
    turn: Option<TurnFile>,
}

/// `[tls]` of [`ServeFile`].
#[derive(serde::Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: PathBuf,
    key: PathBuf,
}

/// `[turn]` of [`ServeFile`].
#[derive(serde::Deserialize, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
struct TurnFile {
    /// `--turn-listen`.
    listen: Option<SocketAddr>,
    /// `--turn-public-ip`.
    public_ip: Option<IpAddr>,
    /// `--turn-url`.
    #[serde(default)]
    urls: Vec<String>,
    /// A file holding the shared secret (one line), e.g. a systemd credential.
    secret_file: Option<PathBuf>,
    /// `--turn-allow-peer`, as CIDR strings.
    #[serde(default)]
    allow_peers: Vec<String>,
    /// `--turn-allocations-per-user`.
    allocations_per_user: Option<usize>,
    /// `--turn-ttl`.
    ttl_secs: Option<u64>,
}

/// TURN credentials last a day, what the TURN REST draft (draft-uberti-behave-turn-rest)
/// recommends: the apps fetch them once per call and the relay
/// (ours, or coturn) checks their expiry on every Refresh and CreatePermission, so a relayed
/// call cannot outlive them. An hour, the earlier default, would cut relayed calls after about
/// 1 h 5 min. What a leaked credential allows meanwhile is bounded by the per-account
/// allocation quota.
const DEFAULT_TURN_TTL_SECS: u64 = 24 * 3600;

/// The largest config file or secret file read: both are a few lines.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Reads `path` whole, refusing more than [`MAX_CONFIG_BYTES`].
fn read_small(path: &Path, what: &str) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("{what} {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("{what} {}", path.display()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        bail!(
            "{what} {}: larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        );
    }
    Ok(text)
}

impl ServeFile {
    /// Parses a config file's text; `origin` names it in errors.
    fn parse(text: &str, origin: &str) -> Result<ServeFile> {
        toml::from_str(text).with_context(|| format!("config file {origin}"))
    }
}

/// Where the server keeps its data.
#[derive(Debug, PartialEq)]
enum Database {
    Memory,
    File(PathBuf),
}

/// What `dyad serve` runs with: the flags over the config file over the defaults.
#[derive(Debug)]
struct Settings {
    listen: SocketAddr,
    database: Database,
    turn_listen: Option<SocketAddr>,
    turn_public_ip: Option<IpAddr>,
    turn_urls: Vec<String>,
    turn_secret: Option<String>,
    turn_allow_peers: Vec<ipnet::IpNet>,
    turn_allocations_per_user: usize,
    turn_ttl: u64,
    open_calls: bool,
    tls: Option<(PathBuf, PathBuf)>,
    reconnect_grace_ms: u64,
    auth_attempts_per_min: Option<f64>,
}

impl Settings {
    fn resolve(args: &ServeArgs, file: ServeFile) -> Result<Settings> {
        let turn = file.turn.unwrap_or_default();
        let database = if args.memory {
            Database::Memory
        } else {
            Database::File(match (&args.db, file.db, file.data_dir) {
                (Some(db), _, _) => db.clone(),
                (None, Some(db), _) => db,
                (None, None, Some(dir)) => dir.join("dyad-server.db"),
                (None, None, None) => PathBuf::from("dyad-server.db"),
            })
        };
        let turn_secret = match (&args.turn_secret, &turn.secret_file) {
            (Some(s), _) if !s.is_empty() => Some(s.clone()),
            (_, Some(path)) => {
                let secret = read_small(path, "TURN secret file")?.trim().to_string();
                if secret.is_empty() {
                    bail!("TURN secret file {}: empty", path.display());
                }
                Some(secret)
            }
            _ => None,
        };
        let mut turn_allow_peers = args.turn_allow_peers.clone();
        for cidr in &turn.allow_peers {
            turn_allow_peers.push(
                cidr.parse()
                    .with_context(|| format!("turn.allow_peers: {cidr:?} is not a CIDR"))?,
            );
        }
        let tls = match (&args.tls_cert, &args.tls_key, file.tls) {
            (Some(cert), Some(key), _) => Some((cert.clone(), key.clone())),
            (_, _, Some(t)) => Some((t.cert, t.key)),
            _ => None,
        };
        Ok(Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8470))),
            database,
            turn_listen: args.turn_listen.or(turn.listen),
            turn_public_ip: args.turn_public_ip.or(turn.public_ip),
            turn_urls: if args.turn_urls.is_empty() {
                turn.urls
            } else {
                args.turn_urls.clone()
            },
            turn_secret,
            turn_allow_peers,
            turn_allocations_per_user: args
                .turn_allocations_per_user
                .or(turn.allocations_per_user)
                .unwrap_or(dyad_server::turn::DEFAULT_ALLOCATIONS_PER_USER),
            turn_ttl: args
                .turn_ttl
                .or(turn.ttl_secs)
                .unwrap_or(DEFAULT_TURN_TTL_SECS),
            open_calls: args.open_calls || file.open_calls.unwrap_or(false),
            tls,
            reconnect_grace_ms: args
                .reconnect_grace_ms
                .or(file.reconnect_grace_ms)
                .unwrap_or(20_000),
            auth_attempts_per_min: args.auth_attempts_per_min.or(file.auth_attempts_per_min),
        })
    }
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
    let file = match &args.config {
        Some(path) => ServeFile::parse(
            &read_small(path, "config file")?,
            &path.display().to_string(),
        )?,
        None => ServeFile::default(),
    };
    let settings = Settings::resolve(args, file)?;
    let runtime = tokio::runtime::Runtime::new().context("tokio runtime")?;
    runtime.block_on(serve(&settings))
}

async fn serve(args: &Settings) -> Result<()> {
    let store = match &args.database {
        Database::Memory => Store::open_in_memory().await?,
        Database::File(db) => Store::open(db)
            .await
            .with_context(|| format!("database {}", db.display()))?,
    };
    let secret = match &args.turn_secret {
        Some(s) => s.as_bytes().to_vec(),
        None => random_secret()?,
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
    let mut turn = turn;
    let embedded = match &mut turn {
        Some(TurnConfig::Embedded(cfg)) => {
            let server = dyad_server::turn::start_embedded_turn(cfg.clone())
                .await
                .context("embedded TURN")?;
            // Listed only if it could be served.
            cfg.nat_test_port = server.nat_test_addr().map(|a| a.port());
            if let Some(at) = server.nat_test_addr() {
                say(format_args!("dyad serve: NAT test (STUN) on udp {at}"));
            }
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
    let tls = match &args.tls {
        Some((cert, key)) => Some(dyad_server::tls::TlsSettings::from_pem_files(cert, key)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let where_ = match &args.database {
        Database::Memory => "memory".to_string(),
        Database::File(db) => db.display().to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    fn args(flags: &[&str]) -> ServeArgs {
        let mut argv = vec!["serve"];
        argv.extend(flags);
        Cli::try_parse_from(argv).expect("flags").serve
    }

    #[test]
    fn the_shipped_example_config_parses_to_what_it_says() {
        let text = include_str!("../contrib/dyad.toml");
        let file = ServeFile::parse(text, "contrib/dyad.toml").expect("example parses");
        let turn = file.turn.as_ref().expect("[turn]");
        assert_eq!(turn.listen, Some(addr("0.0.0.0:3478")));
        assert_eq!(turn.public_ip, Some("203.0.113.5".parse().expect("ip")));
        assert_eq!(turn.allocations_per_user, Some(8));
        let s = Settings::resolve(&args(&[]), ServeFile { turn: None, ..file }).expect("resolve");
        assert_eq!(s.listen, addr("0.0.0.0:443"));
        assert_eq!(
            s.database,
            Database::File(PathBuf::from("/var/lib/dyad/dyad-server.db"))
        );
        assert_eq!(
            s.tls.as_ref().map(|t| t.1.clone()),
            Some(PathBuf::from(
                "/etc/letsencrypt/live/dyad.example.org/privkey.pem"
            ))
        );
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let file = ServeFile::parse(
            "listen = \"0.0.0.0:443\"\nreconnect_grace_ms = 5000\n[turn]\nttl_secs = 600\nallow_peers = [\"10.0.0.0/8\"]\n",
            "test",
        )
        .expect("parse");
        let s = Settings::resolve(
            &args(&[
                "--listen",
                "127.0.0.1:9443",
                "--turn-allow-peer",
                "192.168.0.0/16",
            ]),
            file,
        )
        .expect("resolve");
        assert_eq!(s.listen, addr("127.0.0.1:9443"));
        assert_eq!(s.reconnect_grace_ms, 5000);
        assert_eq!(s.turn_ttl, 600);
        assert_eq!(
            s.turn_allocations_per_user,
            dyad_server::turn::DEFAULT_ALLOCATIONS_PER_USER
        );
        assert_eq!(s.turn_allow_peers.len(), 2);
        assert_eq!(s.database, Database::File(PathBuf::from("dyad-server.db")));
        let s = Settings::resolve(&args(&["--memory"]), ServeFile::default()).expect("resolve");
        assert_eq!(s.database, Database::Memory);
        assert_eq!(s.listen, addr("127.0.0.1:8470"));
        assert_eq!(s.turn_ttl, 86_400, "a relayed call may last a day");
    }

    #[test]
    fn a_typo_or_a_bad_value_is_an_error_that_names_it() {
        let err =
            ServeFile::parse("listne = \"0.0.0.0:443\"\n", "dyad.toml").expect_err("unknown key");
        let text = format!("{err:#}");
        assert!(
            text.contains("dyad.toml") && text.contains("listne"),
            "{text}"
        );
        let err = ServeFile::parse("[turn]\nlisten = \"not an address\"\n", "dyad.toml")
            .expect_err("bad address");
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        let file =
            ServeFile::parse("[turn]\nallow_peers = [\"10.0.0.0/33\"]\n", "t").expect("parse");
        let err = Settings::resolve(&args(&[]), file).expect_err("bad CIDR");
        assert!(format!("{err:#}").contains("10.0.0.0/33"), "{err:#}");
    }

    #[test]
    fn the_turn_secret_comes_from_the_flag_else_the_secret_file_trimmed() {
        let dir = std::env::temp_dir().join(format!("dyad-serve-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let secret = dir.join("turn-secret");
        std::fs::write(&secret, "s3cret\n").expect("write");
        let file = || {
            ServeFile::parse(
                &format!("[turn]\nsecret_file = {:?}\n", secret.display().to_string()),
                "t",
            )
            .expect("parse")
        };
        let s = Settings::resolve(&args(&[]), file()).expect("resolve");
        assert_eq!(s.turn_secret.as_deref(), Some("s3cret"));
        let s = Settings::resolve(&args(&["--turn-secret", "flag"]), file()).expect("resolve");
        assert_eq!(s.turn_secret.as_deref(), Some("flag"));
        std::fs::write(&secret, "\n").expect("write");
        assert!(
            Settings::resolve(&args(&[]), file()).is_err(),
            "an empty secret"
        );
        std::fs::write(&secret, vec![b'x'; 70_000]).expect("write");
        let err = Settings::resolve(&args(&[]), file()).expect_err("too big");
        assert!(format!("{err:#}").contains("larger than"), "{err:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
