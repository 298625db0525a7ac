//! Decoded video to the page: a WebSocket on 127.0.0.1 guarded by a per-launch secret (the
//! fastest path measured on this machine, NOTES.md). One connection per stream (`remote`,
//! `local`); each carries the latest frame only: while the page is still taking one frame, newer
//! ones replace each other in a `watch` and the skipped ones are counted, never queued.
//!
//! Binary message = 32-byte header (little-endian) + I420 planes:
//!
//! | offset | field |
//! | --- | --- |
//! | 0 | magic `DYV1` |
//! | 4 | width (u32) |
//! | 8 | height (u32) |
//! | 12 | sequence number on this connection (u32) |
//! | 16 | test-pattern frame number, or `0xffff_ffff` |
//! | 20 | flags (u32): bit 0 = camera off (the picture is black) |
//! | 24 | capture time, low 48 bits of UNIX µs (u64; 0 when unknown) |
//!
//! The page answers each drawn frame with a text message `drawn <seq> <capture_to_drawn_us>`;
//! those feed [`FrameStats`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dyad_call::media::DecodedVideo;
use dyad_media::{read_marker, VideoFrame};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

use crate::ipc::{FrameEndpoint, FrameStats, StreamStats};

/// Header length.
pub const HEADER_LEN: usize = 32;
/// Largest text message the page may send (acks are ~30 bytes).
pub const MAX_ACK_LEN: usize = 128;
/// How many latency samples are kept per stream.
const SAMPLES: usize = 300;

/// A picture for the page.
#[derive(Debug, Clone)]
pub struct Picture {
    /// Pixels (I420).
    pub frame: Arc<VideoFrame>,
    /// The picture is the camera-off black.
    pub camera_off: bool,
}

impl Picture {
    /// From the call engine's decoded remote frame.
    pub fn remote(d: &DecodedVideo) -> Self {
        Self {
            frame: Arc::new(d.frame.clone()),
            camera_off: d.camera_off,
        }
    }

    /// From a locally captured frame.
    pub fn local(frame: Arc<VideoFrame>) -> Self {
        Self {
            frame,
            camera_off: false,
        }
    }
}

/// Encodes one message (header + planes).
pub fn encode(p: &Picture, seq: u32) -> Vec<u8> {
    let f = &p.frame;
    let marker = read_marker(f).ok();
    let mut out = Vec::with_capacity(HEADER_LEN + f.data().len());
    out.extend_from_slice(b"DYV1");
    out.extend_from_slice(&f.width().to_le_bytes());
    out.extend_from_slice(&f.height().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&marker.map_or(u32::MAX, |m| m.frame).to_le_bytes());
    out.extend_from_slice(&u32::from(p.camera_off).to_le_bytes());
    out.extend_from_slice(&marker.map_or(0, |m| m.capture_us_low48).to_le_bytes());
    out.extend_from_slice(f.data());
    out
}

#[derive(Debug, Default)]
struct Meter {
    sent: u64,
    drawn: u64,
    skipped: u64,
    capture_to_drawn_us: VecDeque<u64>,
    delivery_us: VecDeque<u64>,
    sent_at: VecDeque<(u32, Instant)>,
}

impl Meter {
    fn stats(&self) -> StreamStats {
        StreamStats {
            sent: self.sent,
            drawn: self.drawn,
            skipped: self.skipped,
            capture_to_drawn_p50_ms: percentile_ms(&self.capture_to_drawn_us, 50),
            capture_to_drawn_p95_ms: percentile_ms(&self.capture_to_drawn_us, 95),
            delivery_p50_ms: percentile_ms(&self.delivery_us, 50),
        }
    }
}

fn percentile_ms(v: &VecDeque<u64>, p: usize) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s: Vec<u64> = v.iter().copied().collect();
    s.sort_unstable();
    let i = (s.len() - 1) * p / 100;
    Some(s[i] as f64 / 1000.0)
}

fn push(v: &mut VecDeque<u64>, x: u64) {
    if v.len() == SAMPLES {
        v.pop_front();
    }
    v.push_back(x);
}

/// The two streams and the server that carries them.
#[derive(Debug, Clone)]
pub struct FrameHub {
    remote: watch::Sender<Option<Picture>>,
    local: watch::Sender<Option<Picture>>,
    meters: Arc<Mutex<[Meter; 2]>>,
    endpoint: FrameEndpoint,
}

impl FrameHub {
    /// Binds 127.0.0.1:0 and serves until the runtime stops.
    pub async fn start() -> std::io::Result<FrameHub> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut secret = [0u8; 16];
        getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let hub = FrameHub {
            remote: watch::channel(None).0,
            local: watch::channel(None).0,
            meters: Arc::default(),
            endpoint: FrameEndpoint {
                url: format!("ws://{addr}/"),
                secret,
            },
        };
        let h = hub.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((s, peer)) => {
                        let h = h.clone();
                        tokio::spawn(async move { h.serve(s, peer).await });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "frame server accept");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok(hub)
    }

    /// Where the page connects.
    pub fn endpoint(&self) -> FrameEndpoint {
        self.endpoint.clone()
    }

    /// Publishes the remote picture (or clears it).
    pub fn set_remote(&self, p: Option<Picture>) {
        self.remote.send_replace(p);
    }

    /// Publishes the self-view picture (or clears it).
    pub fn set_local(&self, p: Option<Picture>) {
        self.local.send_replace(p);
    }

    /// Delivery figures.
    pub fn stats(&self) -> FrameStats {
        match self.meters.lock() {
            Ok(m) => FrameStats {
                remote: m[0].stats(),
                local: m[1].stats(),
            },
            Err(_) => FrameStats {
                remote: StreamStats::default(),
                local: StreamStats::default(),
            },
        }
    }

    async fn serve(&self, s: TcpStream, peer: SocketAddr) {
        let secret = self.endpoint.secret.clone();
        let mut stream = None;
        // The handshake callback's error type is tungstenite's (an HTTP response); it is built
        // once per refused connection, so its size does not matter.
        #[allow(clippy::result_large_err)]
        let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let q = req.uri().query().unwrap_or_default();
            let mut ok = false;
            for kv in q.split('&') {
                match kv.split_once('=') {
                    Some(("secret", v)) => ok = constant_time_eq(v.as_bytes(), secret.as_bytes()),
                    Some(("stream", "remote")) => stream = Some(0),
                    Some(("stream", "local")) => stream = Some(1),
                    _ => {}
                }
            }
            if ok && stream.is_some() {
                Ok(resp)
            } else {
                let mut r = ErrorResponse::new(Some("forbidden".into()));
                *r.status_mut() = StatusCode::FORBIDDEN;
                Err(r)
            }
        };
        let ws = match tokio_tungstenite::accept_hdr_async(s, check).await {
            Ok(ws) => ws,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "frame socket refused");
                return;
            }
        };
        let Some(idx) = stream else { return };
        let mut rx = if idx == 0 {
            self.remote.subscribe()
        } else {
            self.local.subscribe()
        };
        rx.mark_changed();
        let (mut tx, mut acks) = ws.split();
        let meters = Arc::clone(&self.meters);
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = acks.next().await {
                let Message::Text(t) = msg else { continue };
                if t.len() > MAX_ACK_LEN {
                    break;
                }
                let mut parts = t.split(' ');
                let (Some("drawn"), Some(seq), Some(age)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let (Ok(seq), Ok(age)) = (seq.parse::<u32>(), age.parse::<i64>()) else {
                    continue;
                };
                let Ok(mut m) = meters.lock() else { break };
                let m = &mut m[idx];
                m.drawn += 1;
                // Negative or absurd ages (no marker, clock step) are not samples.
                if (0..10_000_000).contains(&age) {
                    push(&mut m.capture_to_drawn_us, age as u64);
                }
                while let Some(&(s, at)) = m.sent_at.front() {
                    if s == seq {
                        let us = at.elapsed().as_micros() as u64;
                        push(&mut m.delivery_us, us);
                    }
                    if s.wrapping_sub(seq) as i32 <= 0 {
                        m.sent_at.pop_front();
                    } else {
                        break;
                    }
                }
            }
        });
        let mut seq: u32 = 0;
        while rx.changed().await.is_ok() {
            let pic = rx.borrow_and_update().clone();
            let msg = match &pic {
                Some(p) => encode(p, seq),
                // Cleared (call over, camera stopped): an empty header tells the page to blank.
                None => {
                    let mut m = b"DYV1".to_vec();
                    m.extend_from_slice(&[0u8; HEADER_LEN - 4]);
                    m
                }
            };
            if let Ok(mut m) = self.meters.lock() {
                let m = &mut m[idx];
                m.sent += 1;
                if m.sent_at.len() == SAMPLES {
                    m.sent_at.pop_front();
                }
                m.sent_at.push_back((seq, Instant::now()));
            }
            if tx.send(Message::Binary(msg.into())).await.is_err() {
                break;
            }
            seq = seq.wrapping_add(1);
            // Frames that replaced each other while we were sending were skipped.
            if rx.has_changed().unwrap_or(false) {
                if let Ok(mut m) = self.meters.lock() {
                    m[idx].skipped += 1;
                }
            }
        }
        reader.abort();
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyad_media::{ManualClock, TestPattern, VideoFormat, VideoSource};

    fn pattern_frame() -> VideoFrame {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
        let mut p = TestPattern::new(
            VideoFormat {
                width: 320,
                height: 240,
                fps: 30,
            },
            clock,
        )
        .expect("valid format");
        p.next_frame().expect("pattern")
    }

    #[test]
    fn header_carries_size_frame_number_and_capture_time() {
        let f = pattern_frame();
        let m = read_marker(&f).expect("pattern has a marker");
        let msg = encode(&Picture::local(Arc::new(f)), 7);
        assert_eq!(&msg[0..4], b"DYV1");
        let u32_at = |o: usize| u32::from_le_bytes(msg[o..o + 4].try_into().expect("4 bytes"));
        assert_eq!((u32_at(4), u32_at(8), u32_at(12)), (320, 240, 7));
        assert_eq!(u32_at(16), m.frame);
        assert_eq!(u32_at(20), 0);
        let cap = u64::from_le_bytes(msg[24..32].try_into().expect("8 bytes"));
        assert_eq!(cap, m.capture_us_low48);
        assert_eq!(msg.len(), HEADER_LEN + 320 * 240 * 3 / 2);
    }

    #[tokio::test]
    async fn wrong_secret_is_refused_and_the_right_one_streams_latest_frames() {
        let hub = FrameHub::start().await.expect("loopback");
        let ep = hub.endpoint();
        let bad = format!("{}?stream=remote&secret=nope", ep.url);
        assert!(tokio_tungstenite::connect_async(bad).await.is_err());
        let good = format!("{}?stream=remote&secret={}", ep.url, ep.secret);
        let (mut ws, _) = tokio_tungstenite::connect_async(good)
            .await
            .expect("the secret opens it");
        let f = Arc::new(pattern_frame());
        hub.set_remote(Some(Picture::local(Arc::clone(&f))));
        // The first message may be the empty "no picture" header (the state before the frame).
        let mut b = Vec::new();
        for _ in 0..2 {
            let msg = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
                .await
                .expect("a frame arrives")
                .expect("stream open")
                .expect("no error");
            let Message::Binary(data) = msg else {
                panic!("binary frame expected")
            };
            b = data.to_vec();
            if b.len() > HEADER_LEN {
                break;
            }
        }
        assert!(b.len() > HEADER_LEN, "a picture arrives");
        assert!(b[HEADER_LEN..] == *f.data(), "the pixels arrive unchanged");
        let seq = u32::from_le_bytes(b[12..16].try_into().expect("4 bytes"));
        ws.send(Message::Text(format!("drawn {seq} 4000").into()))
            .await
            .expect("ack");
        for _ in 0..100 {
            if hub.stats().remote.drawn == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let s = hub.stats().remote;
        assert_eq!(s.drawn, 1);
        assert!(s.sent >= 1);
        assert!(s.delivery_p50_ms.is_some(), "the ack matched a sent frame");
        assert_eq!(s.capture_to_drawn_p50_ms, Some(4.0));
    }
}
