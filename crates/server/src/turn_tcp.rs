//! TURN over TCP (RFC 8656 §3.1, RFC 6062 not needed): a client on a network that blocks UDP
//! reaches the embedded TURN server over TCP and is relayed over UDP as usual, which is what
//! browsers do with `turn:host:port?transport=tcp`. The `turn` crate's server reads datagrams from
//! a [`Conn`]; [`StreamConn`] is one over a byte stream, cutting it into the STUN and ChannelData
//! messages it carries (each says its own length), and the embedded server runs one TURN server
//! per accepted connection, closed with it (so the account's allocation quota is freed).

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{watch, Mutex};
use webrtc_util::Conn;

/// How long a connection may wait for its first message.
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay silent after that (a TURN client refreshes its allocation
/// every few minutes and, in a call, sends media all the time).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long one write may take before the connection is given up (a client that stopped
/// reading must not hold the relay's tasks).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many TURN-over-TCP connections at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// The ALPN protocol id of TURN over TLS (RFC 7443): a TLS client asking for it on the HTTPS
/// port gets the embedded TURN server instead of HTTP.
pub const ALPN_TURN: &[u8] = b"stun.turn";

/// A byte stream TURN can run on (TCP, TLS over TCP).
pub trait TurnIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> TurnIo for T {}

/// A stream accepted elsewhere (TLS on the HTTPS port) for the embedded TURN server: the stream,
/// the local address and the peer's.
pub type TurnStream = (Box<dyn TurnIo>, SocketAddr, SocketAddr);

/// Hands streams to a running embedded TURN server ([`crate::turn::EmbeddedTurn::streams`]).
#[derive(Clone)]
pub struct TurnStreams(pub(crate) tokio::sync::mpsc::Sender<TurnStream>);

impl std::fmt::Debug for TurnStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnStreams")
    }
}

impl TurnStreams {
    /// Gives the TURN server this stream; `false` when it is stopped or has too many waiting.
    pub fn hand_over(&self, stream: TurnStream) -> bool {
        self.0.try_send(stream).is_ok()
    }
}

pub use dyad_proto::turn::frame_len;

/// A [`Conn`] over a byte stream (TCP, or TLS over TCP): `recv_from` returns one STUN or
/// ChannelData message at a time, `send_to` writes one (its address is the stream's peer).
pub struct StreamConn<S> {
    reader: Mutex<(ReadHalf<S>, bool)>,
    writer: Mutex<WriteHalf<S>>,
    local: SocketAddr,
    peer: SocketAddr,
    ended: watch::Sender<bool>,
}

impl<S> std::fmt::Debug for StreamConn<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConn")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

fn io_error(kind: std::io::ErrorKind, what: &str) -> webrtc_util::Error {
    webrtc_util::Error::Io(std::io::Error::new(kind, what.to_string()).into())
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> StreamConn<S> {
    /// Wraps `stream`, connected from `peer` to `local`.
    pub fn new(stream: S, local: SocketAddr, peer: SocketAddr) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        Self {
            reader: Mutex::new((reader, false)),
            writer: Mutex::new(writer),
            local,
            peer,
            ended: watch::channel(false).0,
        }
    }

    /// Completes once the stream has ended (closed, broken, timed out or not TURN).
    pub async fn ended(&self) {
        let mut rx = self.ended.subscribe();
        let _ = rx.wait_for(|ended| *ended).await;
    }

    fn end(&self, e: webrtc_util::Error) -> webrtc_util::Error {
        self.ended.send_replace(true);
        e
    }

    async fn read_frame(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        let mut reader = self.reader.lock().await;
        let (stream, started) = &mut *reader;
        let wait = if *started {
            IDLE_TIMEOUT
        } else {
            FIRST_MESSAGE_TIMEOUT
        };
        let mut head = [0u8; 4];
        match tokio::time::timeout(wait, stream.read_exact(&mut head)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(webrtc_util::Error::Io(e.into())),
            Err(_) => return Err(io_error(std::io::ErrorKind::TimedOut, "TURN/TCP: silent")),
        }
        *started = true;
        let Some((len, pad)) = frame_len(head) else {
            return Err(io_error(
                std::io::ErrorKind::InvalidData,
                "TURN/TCP: not a STUN or ChannelData message",
            ));
        };
        if len > buf.len() {
            return Err(io_error(
                std::io::ErrorKind::InvalidData,
                "TURN/TCP: message larger than the read buffer",
            ));
        }
        buf[..4].copy_from_slice(&head);
        let mut rest = [0u8; 3];
        let body = async {
            stream.read_exact(&mut buf[4..len]).await?;
            stream.read_exact(&mut rest[..pad]).await
        };
        match tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, body).await {
            Ok(Ok(_)) => Ok(len),
            Ok(Err(e)) => Err(webrtc_util::Error::Io(e.into())),
            Err(_) => Err(io_error(
                std::io::ErrorKind::TimedOut,
                "TURN/TCP: message cut off",
            )),
        }
    }
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Send + 'static> Conn for StreamConn<S> {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Ok(())
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        match self.read_frame(buf).await {
            Ok(n) => Ok((n, self.peer)),
            Err(e) => Err(self.end(e)),
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        let write = async {
            let mut writer = self.writer.lock().await;
            writer.write_all(buf).await?;
            writer.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => Ok(buf.len()),
            Ok(Err(e)) => Err(self.end(webrtc_util::Error::Io(e.into()))),
            Err(_) => Err(self.end(io_error(
                std::io::ErrorKind::TimedOut,
                "TURN/TCP: the client is not reading",
            ))),
        }
    }

    async fn send_to(&self, buf: &[u8], _target: SocketAddr) -> webrtc_util::Result<usize> {
        self.send(buf).await
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.peer)
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        // Each allocation of the connection's server "closes" its listening conn when it ends;
        // the stream itself ends when the client closes it or the server is closed.
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
