//! TURN over TCP and TLS for an ICE agent that speaks TURN over UDP only (webrtc-ice 0.17
//! skips `?transport=tcp` and `turns:` URLs). Each shim is a UDP socket on 127.0.0.1 that the
//! agent is given as its TURN server; every source address the agent uses gets its own TCP (or
//! TLS, ALPN `stun.turn`) connection to the real server, and messages pass as they are both ways:
//! the stream side cut by each message's own length, ChannelData padded to 4 bytes on the
//! stream (RFC 8656 §12.5). A TCP connection is one TURN session, so nothing reconnects silently:
//! a broken connection ends its allocation and the agent sees its relay fail. The shim notes
//! the relayed addresses the server grants, so the path can be named "over TCP" / "over TLS".

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dyad_proto::turn::{frame_len, is_channel_data};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::signal::StreamRoute;

/// How a shim reaches the TURN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `turn:host:port?transport=tcp`.
    Tcp,
    /// `turns:host:port?transport=tcp`.
    Tls,
}

/// At most this many agent sockets (so TCP connections) per shim.
pub const MAX_STREAMS: usize = 16;
/// Connecting (and the TLS handshake) may take this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message either way (a TURN message is at most 65 535 + 20 bytes).
const MAX_MESSAGE: usize = 65_560;

/// A `turn:` / `turns:` URL this shim can carry: its kind, host and port.
pub fn parse_stream_url(url: &str) -> Option<(StreamKind, String, u16)> {
    let (kind, rest) = if let Some(r) = url.strip_prefix("turns:") {
        (StreamKind::Tls, r)
    } else if let Some(r) = url.strip_prefix("turn:") {
        (StreamKind::Tcp, r)
    } else {
        return None;
    };
    let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
    let tcp = query
        .split('&')
        .any(|kv| kv.eq_ignore_ascii_case("transport=tcp"));
    if kind == StreamKind::Tcp && !tcp {
        return None;
    }
    if kind == StreamKind::Tls && !(tcp || query.is_empty()) {
        return None;
    }
    let (host, port) =
        split_host_port(hostport, if kind == StreamKind::Tls { 5349 } else { 3478 })?;
    Some((kind, host, port))
}

/// `host[:port]` of a STUN/TURN URL (RFC 7064/7065): the host without IPv6 brackets, and the
/// port, `default` when none is given; `None` for an empty host or a bad port.
pub(crate) fn split_host_port(hostport: &str, default: u16) -> Option<(String, u16)> {
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => {
            (h, p.parse().ok()?)
        }
        _ => (hostport, default),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// The relayed address in a TURN Allocate success response (XOR-RELAYED-ADDRESS, RFC 8656
/// §18.3), if `msg` is one.
pub fn relayed_address(msg: &[u8]) -> Option<SocketAddr> {
    const ALLOCATE_SUCCESS: [u8; 2] = [0x01, 0x03];
    const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    if msg.len() < 20 || msg[..2] != ALLOCATE_SUCCESS || msg[4..8] != COOKIE {
        return None;
    }
    let mut at = 20;
    while at + 4 <= msg.len() {
        let kind = u16::from_be_bytes([msg[at], msg[at + 1]]);
        let len = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
        let value = msg.get(at + 4..at + 4 + len)?;
        if kind == 0x0016 && len >= 8 {
            let port = u16::from_be_bytes([value[2], value[3]]) ^ 0x2112;
            let ip = match (value[1], len) {
                (0x01, 8) => {
                    let mut o = [0u8; 4];
                    for (i, b) in o.iter_mut().enumerate() {
                        *b = value[4 + i] ^ COOKIE[i];
                    }
                    IpAddr::V4(Ipv4Addr::from(o))
                }
                (0x02, 20) => {
                    let mut key = [0u8; 16];
                    key[..4].copy_from_slice(&COOKIE);
                    key[4..].copy_from_slice(&msg[8..20]);
                    let mut o = [0u8; 16];
                    for (i, b) in o.iter_mut().enumerate() {
                        *b = value[4 + i] ^ key[i];
                    }
                    IpAddr::V6(Ipv6Addr::from(o))
                }
                _ => return None,
            };
            return Some(SocketAddr::new(ip, port));
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// Zero bytes to write after `datagram` on a stream: ChannelData is padded to 4 bytes there
/// (webrtc-rs pads it already; another agent may not), STUN is a multiple of 4 anyway.
pub fn stream_padding(datagram: &[u8]) -> usize {
    if is_channel_data(datagram) {
        (4 - datagram.len() % 4) % 4
    } else {
        0
    }
}

/// Relayed addresses granted through shims, and over what.
pub type Relayed = Arc<Mutex<HashMap<SocketAddr, StreamKind>>>;

/// A running shim; its tasks stop when it is dropped.
#[derive(Debug)]
pub struct TurnShim {
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TurnShim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TurnShim {
    /// Where the agent sends its TURN traffic (`turn:<this>?transport=udp`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A shim to `host:port` over `kind`, reached by `route` (directly or through an HTTP
    /// proxy); TLS trusts `tls` and names `host`.
    pub async fn start(
        kind: StreamKind,
        host: String,
        port: u16,
        tls: Arc<rustls::ClientConfig>,
        route: StreamRoute,
        relayed: Relayed,
    ) -> std::io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let local = socket.local_addr()?;
        let task = tokio::spawn(run(socket, kind, host, port, tls, route, relayed));
        Ok(Self { local, task })
    }
}

async fn run(
    socket: Arc<UdpSocket>,
    kind: StreamKind,
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    route: StreamRoute,
    relayed: Relayed,
) {
    let mut streams: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        // Only the agent on this host talks to the shim.
        if !from.ip().is_loopback() && !from.ip().is_unspecified() {
            continue;
        }
        streams.retain(|_, tx| !tx.is_closed());
        if !streams.contains_key(&from) {
            if streams.len() >= MAX_STREAMS {
                continue;
            }
            let (tx, rx) = mpsc::channel(256);
            streams.insert(from, tx);
            tasks.spawn(carry(
                socket.clone(),
                from,
                rx,
                kind,
                host.clone(),
                port,
                tls.clone(),
                route.clone(),
                relayed.clone(),
            ));
        }
        if let Some(tx) = streams.get(&from) {
            let _ = tx.try_send(buf[..n].to_vec());
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

async fn connect(
    kind: StreamKind,
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    route: &StreamRoute,
) -> std::io::Result<Box<dyn Stream>> {
    let tcp = route
        .connect(host, port)
        .await
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    match kind {
        StreamKind::Tcp => Ok(Box::new(tcp)),
        StreamKind::Tls => {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            Ok(Box::new(tls))
        }
    }
}

/// One agent socket's TCP/TLS connection: datagrams from `rx` go out as stream messages, stream
/// messages come back to `agent`.
#[allow(clippy::too_many_arguments)]
async fn carry(
    socket: Arc<UdpSocket>,
    agent: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
    kind: StreamKind,
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    route: StreamRoute,
    relayed: Relayed,
) {
    let stream = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        connect(kind, &host, port, tls, &route),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("TURN over {kind:?} to {host}:{port}: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("TURN over {kind:?} to {host}:{port}: timed out");
            return;
        }
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let up = async {
        // The agent retransmits requests over UDP; the stream is reliable, so a request seen
        // already is not sent again (a second Allocate would be refused as a mismatch).
        let mut seen: VecDeque<[u8; 12]> = VecDeque::new();
        while let Some(datagram) = rx.recv().await {
            // A STUN request: class bits C1 (0x0100) and C0 (0x0010) of the type both clear.
            let request = datagram.len() >= 20
                && datagram[0] >> 6 == 0
                && datagram[0] & 0x01 == 0
                && datagram[1] & 0x10 == 0;
            if request {
                let mut id = [0u8; 12];
                id.copy_from_slice(&datagram[8..20]);
                if seen.contains(&id) {
                    continue;
                }
                if seen.len() == 32 {
                    seen.pop_front();
                }
                seen.push_back(id);
            }
            let pad = stream_padding(&datagram);
            if writer.write_all(&datagram).await.is_err()
                || writer.write_all(&[0u8; 3][..pad]).await.is_err()
                || writer.flush().await.is_err()
            {
                return;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let mut head = [0u8; 4];
            if reader.read_exact(&mut head).await.is_err() {
                return;
            }
            let Some((len, pad)) = frame_len(head) else {
                return;
            };
            if len > buf.len() {
                return;
            }
            buf[..4].copy_from_slice(&head);
            let mut rest = [0u8; 3];
            if reader.read_exact(&mut buf[4..len]).await.is_err()
                || reader.read_exact(&mut rest[..pad]).await.is_err()
            {
                return;
            }
            if let Some(addr) = relayed_address(&buf[..len]) {
                if let Ok(mut r) = relayed.lock() {
                    r.insert(addr, kind);
                }
            }
            if socket.send_to(&buf[..len], agent).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_are_tcp_turn_and_turns() {
        assert_eq!(
            parse_stream_url("turn:192.0.2.1:3478?transport=tcp"),
            Some((StreamKind::Tcp, "192.0.2.1".into(), 3478))
        );
        assert_eq!(
            parse_stream_url("turns:dyad.example.org:443?transport=tcp"),
            Some((StreamKind::Tls, "dyad.example.org".into(), 443))
        );
        assert_eq!(
            parse_stream_url("turns:dyad.example.org"),
            Some((StreamKind::Tls, "dyad.example.org".into(), 5349))
        );
        assert_eq!(
            parse_stream_url("turn:[2001:db8::1]:3478?transport=tcp"),
            Some((StreamKind::Tcp, "2001:db8::1".into(), 3478))
        );
        assert_eq!(parse_stream_url("turn:192.0.2.1:3478?transport=udp"), None);
        assert_eq!(parse_stream_url("turn:192.0.2.1:3478"), None);
        assert_eq!(parse_stream_url("stun:192.0.2.1:3478"), None);
    }

    #[test]
    fn channel_data_is_padded_on_the_stream_and_stun_is_not() {
        // Channel 0x4000, 5 bytes of data: 9 bytes, 3 of padding.
        assert_eq!(stream_padding(&[0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5]), 3);
        assert_eq!(stream_padding(&[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]), 0);
        // A Binding request (20 bytes).
        let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[0; 12]);
        assert_eq!(stream_padding(&stun), 0);
        // Whatever the shim pads, the server's reader finds the next message after it.
        let framed = frame_len([0x40, 0x00, 0x00, 0x05]);
        assert_eq!(framed, Some((9, 3)));
    }

    #[test]
    fn the_relayed_address_is_read_from_an_allocate_success() {
        // XOR-RELAYED-ADDRESS 192.0.2.7:50000 (port ^ 0x2112, address ^ the magic cookie).
        let port = 50000u16 ^ 0x2112;
        let ip = [192 ^ 0x21, 0x12, 2 ^ 0xa4, 7 ^ 0x42]; // 192.0.2.7 ^ 21 12 a4 42
        let mut msg = vec![0x01, 0x03, 0x00, 12, 0x21, 0x12, 0xa4, 0x42];
        msg.extend_from_slice(&[7u8; 12]);
        msg.extend_from_slice(&[0x00, 0x16, 0x00, 0x08, 0x00, 0x01]);
        msg.extend_from_slice(&port.to_be_bytes());
        msg.extend_from_slice(&ip);
        assert_eq!(
            relayed_address(&msg),
            Some("192.0.2.7:50000".parse().expect("addr"))
        );
        // A cut message is not one, nor is a request of the same shape.
        assert_eq!(relayed_address(&msg[..24]), None);
        msg[0] = 0x00;
        assert_eq!(relayed_address(&msg), None);
    }
}
