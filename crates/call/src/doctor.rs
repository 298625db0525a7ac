//! "Test my network" (`dyad doctor`): what of the server and its relays this network reaches,
//! and what that means for calls, in plain words. The checks gather ICE candidates the way a
//! call does, one peer connection per kind of ICE server the server lists (STUN, TURN over UDP,
//! over TCP, over TLS), so each result is that kind's alone; [`verdict`] is a pure function of
//! the [`Findings`].

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::error::Result;
use crate::rtc::{RtcConfig, RtcEvent, RtcPeer};
use crate::signal::{self, ServerUrl};
use dyad_proto::http::IceServer;

/// How long one kind's gathering may take (a relay that does not answer in this time is
/// reported as not working).
const GATHER_WAIT: Duration = Duration::from_secs(6);

/// How long the NAT test waits for its two STUN answers.
const NAT_TEST_WAIT: Duration = Duration::from_secs(2);

/// Whether this network's NAT keeps one public address for every destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// The server names no second STUN address (or no STUN server) to compare with.
    NotOffered,
    /// It names one, but it or the first did not answer (or did not resolve): a blocked port.
    NoAnswer,
    /// Both of the server's STUN ports saw the same public address and port. Both are on one
    /// IP, so a NAT that maps per destination *address* (RFC 4787 "address-dependent") looks
    /// the same; most that keep the port for two ports keep it for every destination
    /// (endpoint-independent), which ICE punches through.
    SameForEveryDestination,
    /// Each saw another port (or address): a "symmetric" NAT; a direct path needs the other
    /// side to be open, else the relay carries the call.
    PerDestination,
}

/// One relay kind's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    /// The server lists no such relay.
    NotOffered,
    /// An allocation was granted.
    Works,
    /// Listed, but no allocation within [`GATHER_WAIT`].
    Fails,
}

/// What the checks found.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    /// Whether the server was reached over TLS.
    pub https: bool,
    /// Whether the server's WebSocket (where calls ring) answered with its welcome.
    pub websocket: bool,
    /// The HTTP proxy the server (and TURN over TCP/TLS) is reached through, if any.
    pub proxy: Option<String>,
    /// The server is on this computer (a loopback address, as the app's built-in one): calls
    /// through it reach only accounts on this computer, over loopback, whatever the network.
    pub server_local: bool,
    /// Median of three authenticated HTTP requests to the server, ms.
    pub server_round_trip_ms: f64,
    /// This machine's own IPv4 and IPv6 addresses (loopback and link-local left out).
    pub host_v4: Vec<String>,
    /// See `host_v4`.
    pub host_v6: Vec<String>,
    /// Whether the server lists a STUN server.
    pub stun_offered: bool,
    /// The public addresses STUN saw, with the local port each came from: `(public, local port)`.
    pub public: Vec<(String, u16)>,
    /// The NAT test: one socket's public address as two of the server's STUN addresses see it.
    pub mapping: Mapping,
    /// TURN over UDP, TCP and TLS.
    pub relay_udp: Relay,
    /// See `relay_udp`.
    pub relay_tcp: Relay,
    /// See `relay_udp`.
    pub relay_tls: Relay,
}

/// The kinds of ICE server, as the doctor groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stun,
    TurnUdp,
    TurnTcp,
    TurnTls,
}

/// A URL's kind: TCP and TLS relays as the call's TURN shims read them.
fn kind_of(url: &str) -> Kind {
    if url.starts_with("stun:") || url.starts_with("stuns:") {
        return Kind::Stun;
    }
    match crate::turn_shim::parse_stream_url(url) {
        Some((crate::turn_shim::StreamKind::Tcp, _, _)) => Kind::TurnTcp,
        Some((crate::turn_shim::StreamKind::Tls, _, _)) => Kind::TurnTls,
        None => Kind::TurnUdp,
    }
}

/// The servers of one kind, with their credentials.
fn servers_of(all: &[IceServer], kind: Kind) -> Vec<IceServer> {
    all.iter()
        .filter_map(|s| {
            let urls: Vec<String> = s
                .urls
                .iter()
                .filter(|u| kind_of(u) == kind)
                .cloned()
                .collect();
            (!urls.is_empty()).then(|| IceServer {
                urls,
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
        })
        .collect()
}

/// A gathered candidate's address, port, type and related port (`candidate:` line fields).
#[derive(Debug, PartialEq)]
struct Gathered {
    ip: String,
    port: u16,
    typ: String,
    rport: Option<u16>,
}

fn parse_candidate(line: &str) -> Option<Gathered> {
    let f: Vec<&str> = line
        .trim_start_matches("candidate:")
        .split_whitespace()
        .collect();
    let typ_at = f.iter().position(|w| *w == "typ")?;
    let rport = f
        .iter()
        .position(|w| *w == "rport")
        .and_then(|i| f.get(i + 1))
        .and_then(|p| p.parse().ok());
    Some(Gathered {
        ip: (*f.get(4)?).to_string(),
        port: f.get(5)?.parse().ok()?,
        typ: (*f.get(typ_at + 1)?).to_string(),
        rport,
    })
}

/// Gathers with only `servers`; returns the candidates (until gathering ends or the wait).
async fn gather(servers: Vec<IceServer>, url: &ServerUrl) -> Result<Vec<Gathered>> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = RtcConfig {
        ice_servers: servers,
        relay_only: false,
        turn_tls: url.turn_tls_config().ok(),
        turn_route: url.stream_route(),
    };
    let mut peer = RtcPeer::new(&config, tx).await?;
    peer.create_offer(false).await?;
    let deadline = tokio::time::Instant::now() + GATHER_WAIT;
    let mut out = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        match event {
            RtcEvent::LocalCandidate(Some(c)) => out.extend(parse_candidate(&c.candidate)),
            RtcEvent::LocalCandidate(None) => break,
            _ => {}
        }
    }
    peer.close().await;
    Ok(out)
}

fn relay_result(offered: bool, gathered: &[Gathered]) -> Relay {
    match (offered, gathered.iter().any(|g| g.typ == "relay")) {
        (false, _) => Relay::NotOffered,
        (true, true) => Relay::Works,
        (true, false) => Relay::Fails,
    }
}

/// Runs every check against `server` as `username` (signing in with `password`).
pub async fn run(server: &ServerUrl, username: &str, password: &str) -> Result<Findings> {
    let session = signal::login(server, username, password).await?;
    run_signed_in(server, &session.token).await
}

/// `host:port` of a `stun:` URL, resolved.
async fn stun_address(url: &str) -> Option<std::net::SocketAddr> {
    let rest = url.strip_prefix("stun:")?;
    let (host, port) = crate::turn_shim::split_host_port(rest.split('?').next()?, 3478)?;
    let mut found = tokio::net::lookup_host((host.as_str(), port)).await.ok()?;
    found.next()
}

/// The NAT test: the server's first STUN address and its `nat_test` one, asked from one socket.
async fn nat_mapping(first: Option<&str>, nat_test: Option<&str>) -> Mapping {
    let (Some(first), Some(second)) = (first, nat_test) else {
        return Mapping::NotOffered;
    };
    let (Some(a), Some(b)) = (stun_address(first).await, stun_address(second).await) else {
        return Mapping::NoAnswer;
    };
    match crate::rtc::stun_mappings(&[a, b], NAT_TEST_WAIT).await[..] {
        [Some(x), Some(y)] if x == y => Mapping::SameForEveryDestination,
        [Some(_), Some(_)] => Mapping::PerDestination,
        _ => Mapping::NoAnswer,
    }
}

/// Runs every check against `server` with a signed-in session's `token` (the app's).
pub async fn run_signed_in(server: &ServerUrl, token: &str) -> Result<Findings> {
    let mut times = Vec::new();
    let mut ice = None;
    for _ in 0..3 {
        let started = Instant::now();
        ice = Some(signal::ice_servers(server, token).await?);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    // The WebSocket: where calls ring. Its own device id, so no other device of this account
    // is replaced; closed at once.
    let websocket = match signal::Connection::connect(server, token, "network-test").await {
        Ok(conn) => {
            drop(conn);
            true
        }
        // The server itself refused (e.g. too many devices at once): the network let the
        // WebSocket through, which is what this test is about.
        Err(e @ crate::CallError::Server { .. }) => {
            tracing::info!("network test: the WebSocket answered with a refusal: {e}");
            true
        }
        Err(e) => {
            tracing::info!("network test: WebSocket: {e}");
            false
        }
    };
    let nat_test = ice.as_ref().and_then(|i| i.nat_test.clone());
    let all = ice.map(|i| i.ice_servers).unwrap_or_default();
    let [stun, udp, tcp, tls] =
        [Kind::Stun, Kind::TurnUdp, Kind::TurnTcp, Kind::TurnTls].map(|k| servers_of(&all, k));
    let offered = [&stun, &udp, &tcp, &tls].map(|s| !s.is_empty());
    let first_stun = stun.iter().flat_map(|s| &s.urls).next().cloned();
    let mapping = nat_mapping(first_stun.as_deref(), nat_test.as_deref());
    let (mapping, g_stun, g_udp, g_tcp, g_tls) = tokio::join!(
        mapping,
        gather(stun, server),
        gather(udp, server),
        gather(tcp, server),
        gather(tls, server)
    );
    let (g_stun, g_udp, g_tcp, g_tls) = (g_stun?, g_udp?, g_tcp?, g_tls?);
    let local = |v6: bool| -> Vec<String> {
        let mut v: Vec<String> = g_stun
            .iter()
            .filter(|g| g.typ == "host")
            .filter_map(|g| g.ip.parse::<std::net::IpAddr>().ok())
            .filter(|ip| ip.is_ipv6() == v6 && !ip.is_loopback())
            .filter(|ip| match ip {
                std::net::IpAddr::V6(a) => (a.segments()[0] & 0xffc0) != 0xfe80,
                std::net::IpAddr::V4(a) => !a.is_link_local(),
            })
            .map(|ip| ip.to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut public: Vec<(String, u16)> = g_stun
        .iter()
        .chain(&g_udp)
        .filter(|g| g.typ == "srflx")
        .map(|g| (format!("{}:{}", g.ip, g.port), g.rport.unwrap_or(0)))
        .collect();
    public.sort();
    public.dedup();
    Ok(Findings {
        https: server.is_tls(),
        websocket,
        proxy: server.proxy(),
        // The app's built-in server: on loopback, and it lists no STUN or relay (a `dyad serve`
        // on this machine with TURN is tested as any other).
        server_local: server.is_loopback() && offered.iter().all(|o| !o),
        server_round_trip_ms: times.get(1).copied().unwrap_or(0.0),
        host_v4: local(false),
        host_v6: local(true),
        stun_offered: offered[0],
        public,
        mapping,
        relay_udp: relay_result(offered[1], &g_udp),
        relay_tcp: relay_result(offered[2], &g_tcp),
        relay_tls: relay_result(offered[3], &g_tls),
    })
}

/// Whether calls can be set up at all from this network (the doctor's exit status).
pub fn calls_possible(f: &Findings) -> bool {
    f.websocket
        && (f.server_local
            || direct_possible(f)
            || [f.relay_udp, f.relay_tcp, f.relay_tls].contains(&Relay::Works))
}

/// A public address seen by STUN, or a global IPv6 address of this machine's own (IPv6 needs no
/// NAT: a peer may reach it directly, firewalls permitting).
fn direct_possible(f: &Findings) -> bool {
    !f.public.is_empty()
        || f.host_v6.iter().any(|a| {
            a.parse::<std::net::Ipv6Addr>()
                .is_ok_and(|ip| (ip.segments()[0] & 0xfe00) != 0xfc00)
        })
}

fn relay_word(r: Relay) -> &'static str {
    match r {
        Relay::NotOffered => "not offered by the server",
        Relay::Works => "works",
        Relay::Fails => "fails (blocked, or the relay does not answer)",
    }
}

/// The findings in plain words, one line each, the conclusion last.
pub fn verdict(f: &Findings) -> Vec<String> {
    let mut out = vec![format!(
        "Server: reached over {}{}, round trip {:.0} ms; {}.",
        if f.https { "HTTPS" } else { "HTTP" },
        f.proxy
            .as_ref()
            .map(|p| format!(" through the proxy {}", p.trim_end_matches('/')))
            .unwrap_or_default(),
        f.server_round_trip_ms,
        if f.websocket {
            "its WebSocket answers (calls can ring here)"
        } else {
            "its WebSocket does not answer: calls cannot ring here (a proxy or firewall may \
             block WebSocket upgrades)"
        }
    )];
    let list = |v: &[String]| {
        if v.is_empty() {
            "no".to_string()
        } else {
            format!("yes ({})", v.join(", "))
        }
    };
    out.push(format!("IPv4: {}.", list(&f.host_v4)));
    out.push(format!("IPv6: {}.", list(&f.host_v6)));
    out.push(match (f.stun_offered, f.public.first()) {
        (false, _) => "Public address: not tested (the server lists no STUN server).".into(),
        (true, None) => "Public address: none (UDP to the server's STUN port is blocked).".into(),
        (true, Some((public, local))) => {
            let behind_nat = !f
                .host_v4
                .iter()
                .chain(&f.host_v6)
                .any(|h| public.starts_with(&format!("{h}:")));
            let port = match public
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
            {
                Some(p) if p == *local => "kept your port",
                _ => "changed your port",
            };
            let mapping = match f.mapping {
                Mapping::SameForEveryDestination => {
                    "It kept one public address for two of the server's ports, as a NAT that \
                     keeps one for every destination does, so direct calls get through it."
                }
                Mapping::PerDestination => {
                    "It gives each destination another port (a symmetric NAT): a direct call \
                     works only when the other side's network is open; else the relay carries it."
                }
                Mapping::NotOffered => {
                    "Whether it gives each destination another port (a symmetric NAT) was not \
                     tested: the server names no second STUN address."
                }
                Mapping::NoAnswer => {
                    "Whether it gives each destination another port (a symmetric NAT) was not \
                     tested: the server's second STUN port (its TURN port + 1, UDP) did not \
                     answer; it may be blocked on the way or on the server."
                }
            };
            if behind_nat {
                format!(
                    "Public address: {public}: your network translates addresses (NAT) and \
                     {port}. {mapping}"
                )
            } else {
                format!("Public address: {public}: no address translation (NAT) on the way.")
            }
        }
    });
    out.push(format!("Relay over UDP: {}.", relay_word(f.relay_udp)));
    out.push(format!("Relay over TCP: {}.", relay_word(f.relay_tcp)));
    out.push(format!("Relay over TLS: {}.", relay_word(f.relay_tls)));
    let direct = direct_possible(f);
    let udp_relay = f.relay_udp == Relay::Works;
    let stream_relay = [f.relay_tcp, f.relay_tls].contains(&Relay::Works);
    out.push(
        if !f.websocket {
            "Calls will not connect: offers and answers travel over the server's WebSocket, \
             which this network does not let through."
        } else if f.server_local {
            "This server runs on this computer: calls through it reach only accounts here (the \
             echo contact, or another Dyad on this machine). To call someone elsewhere, use a \
             server you can both reach (Settings → Server)."
        } else if direct && udp_relay {
            "Calls will connect directly where the other side's network allows, else through \
             the relay over UDP: full quality."
        } else if direct && stream_relay {
            "Calls will connect directly where the other side's network allows, else through \
             the relay over TCP or TLS, where video quality may be lower on a lossy link."
        } else if direct {
            "No relay works or is offered: calls connect only when both networks allow a \
             direct path (not behind a strict NAT or firewall)."
        } else if udp_relay {
            "Direct paths are blocked here: calls will use the relay over UDP."
        } else if stream_relay {
            "UDP is blocked here: calls will use the relay over TCP or TLS; video quality may \
             be lower on a lossy link."
        } else {
            "Neither a direct path nor a relay can be set up from this network: calls will not \
             connect."
        }
        .to_string(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Findings {
        Findings {
            https: true,
            websocket: true,
            proxy: None,
            server_local: false,
            server_round_trip_ms: 12.4,
            host_v4: vec!["192.168.1.20".into()],
            host_v6: vec![],
            stun_offered: true,
            public: vec![("203.0.113.9:50000".into(), 50000)],
            mapping: Mapping::SameForEveryDestination,
            relay_udp: Relay::Works,
            relay_tcp: Relay::Works,
            relay_tls: Relay::Works,
        }
    }

    #[test]
    fn an_open_network_behind_a_nat_gets_full_quality() {
        let v = verdict(&open());
        assert_eq!(
            v[0],
            "Server: reached over HTTPS, round trip 12 ms; its WebSocket answers (calls can \
             ring here)."
        );
        assert!(v[3].contains("(NAT) and kept your port"), "{v:?}");
        assert!(
            v[3].contains("one public address for two of the server's ports"),
            "{v:?}"
        );
        assert!(
            v.last().is_some_and(|l| l.ends_with("full quality.")),
            "{v:?}"
        );
        assert!(calls_possible(&open()));
    }

    #[test]
    fn a_symmetric_nat_and_a_blocked_websocket_are_said_in_words() {
        let f = Findings {
            websocket: false,
            public: vec![("203.0.113.9:61234".into(), 50000)],
            mapping: Mapping::PerDestination,
            ..open()
        };
        let v = verdict(&f);
        assert!(v[0].contains("calls cannot ring here"), "{v:?}");
        let proxied = verdict(&Findings {
            proxy: Some("http://192.0.2.8:3128".into()),
            ..open()
        });
        assert!(
            proxied[0]
                .starts_with("Server: reached over HTTPS through the proxy http://192.0.2.8:3128,"),
            "{proxied:?}"
        );
        assert!(v[3].contains("changed your port"), "{v:?}");
        assert!(v[3].contains("(a symmetric NAT)"), "{v:?}");
        let untested = verdict(&Findings {
            mapping: Mapping::NotOffered,
            ..open()
        });
        assert!(
            untested[3].contains("names no second STUN address"),
            "{untested:?}"
        );
        let blocked = verdict(&Findings {
            mapping: Mapping::NoAnswer,
            ..open()
        });
        assert!(blocked[3].contains("did not answer"), "{blocked:?}");
        assert!(
            v.last()
                .is_some_and(|l| l.starts_with("Calls will not connect")),
            "{v:?}"
        );
        assert!(!calls_possible(&f), "no WebSocket, no call");
    }

    #[test]
    fn a_server_on_this_computer_is_said_to_reach_only_this_computer() {
        let f = Findings {
            https: false,
            server_local: true,
            stun_offered: false,
            public: vec![],
            host_v4: vec![],
            relay_udp: Relay::NotOffered,
            relay_tcp: Relay::NotOffered,
            relay_tls: Relay::NotOffered,
            ..open()
        };
        let v = verdict(&f);
        assert!(
            v.last()
                .is_some_and(|l| l.starts_with("This server runs on this computer")),
            "{v:?}"
        );
        assert!(calls_possible(&f), "loopback calls need no STUN or relay");
        assert!(!calls_possible(&Findings {
            websocket: false,
            ..f.clone()
        }));
        let at = |u: &str| ServerUrl::parse(u).map(|s| s.is_loopback());
        for u in [
            "http://localhost:4000",
            "http://127.0.0.1:4000",
            "http://[::1]:4000",
        ] {
            assert_eq!(at(u).ok(), Some(true), "{u}");
        }
        for u in ["https://dyad.example.org", "http://198.18.0.1:443"] {
            assert_eq!(at(u).ok(), Some(false), "{u}");
        }
    }

    #[test]
    fn a_network_without_udp_is_told_it_will_use_the_relay_over_tcp_or_tls() {
        let f = Findings {
            public: vec![],
            relay_udp: Relay::Fails,
            relay_tls: Relay::Fails,
            ..open()
        };
        let v = verdict(&f);
        assert!(v[3].contains("none (UDP"), "{v:?}");
        assert_eq!(
            v[4],
            "Relay over UDP: fails (blocked, or the relay does not answer)."
        );
        assert_eq!(v[5], "Relay over TCP: works.");
        assert!(
            v.last()
                .is_some_and(|l| l.starts_with("UDP is blocked here")),
            "{v:?}"
        );
        assert!(calls_possible(&f));
    }

    #[test]
    fn nothing_reachable_says_calls_will_not_connect() {
        let f = Findings {
            public: vec![],
            relay_udp: Relay::Fails,
            relay_tcp: Relay::Fails,
            relay_tls: Relay::NotOffered,
            ..open()
        };
        let v = verdict(&f);
        assert!(
            v.last()
                .is_some_and(|l| l.ends_with("calls will not connect.")),
            "{v:?}"
        );
        assert!(!calls_possible(&f));
        assert_eq!(v[6], "Relay over TLS: not offered by the server.");
    }

    #[test]
    fn a_global_ipv6_address_is_a_direct_path_even_with_no_stun_or_relay() {
        let f = Findings {
            host_v4: vec![],
            host_v6: vec!["2001:db8:1::2".into()],
            stun_offered: false,
            public: vec![],
            relay_udp: Relay::NotOffered,
            relay_tcp: Relay::NotOffered,
            relay_tls: Relay::NotOffered,
            ..open()
        };
        assert!(calls_possible(&f));
        let v = verdict(&f);
        assert!(
            v.last()
                .is_some_and(|l| l.starts_with("No relay works or is offered")),
            "{v:?}"
        );
        let ula_only = Findings {
            host_v6: vec!["fd00::2".into()],
            ..f
        };
        assert!(
            !calls_possible(&ula_only),
            "a unique-local address is not public"
        );
    }

    #[test]
    fn candidates_and_urls_are_read_as_a_call_would() {
        assert_eq!(
            parse_candidate(
                "candidate:1 1 udp 1694498815 198.18.1.2 40123 typ srflx raddr 0.0.0.0 rport 40123"
            ),
            Some(Gathered {
                ip: "198.18.1.2".into(),
                port: 40123,
                typ: "srflx".into(),
                rport: Some(40123)
            })
        );
        assert_eq!(parse_candidate("candidate:garbage"), None);
        assert_eq!(
            kind_of("turns:dyad.example.org:443?transport=tcp"),
            Kind::TurnTls
        );
        assert_eq!(
            kind_of("turn:203.0.113.5:3478?transport=tcp"),
            Kind::TurnTcp
        );
        assert_eq!(
            kind_of("turn:203.0.113.5:3478?transport=udp"),
            Kind::TurnUdp
        );
        assert_eq!(kind_of("stun:203.0.113.5:3478"), Kind::Stun);
    }
}
