//! Two call sessions against each other over a simulated network, in simulated time.
//!
//! The network (each direction on its own): one-way delay, jitter (with or without reordering),
//! random or bursty (Gilbert–Elliott) loss, duplication, a rate cap with a drop-tail queue, and
//! changes of any of these at given times. Time is simulated and everything random comes from
//! the scenario's seed, so a minute of a bad call runs in well under a second and the same seed
//! gives the same trace.
//!
//! Media: [`Media::Model`] makes frames of the size the encoder would (the session's target ÷
//! frame rate, ±15 %, keyframes 3× larger, as libvpx caps them) carrying their frame number and
//! capture time, and a decoder model that accepts a frame only if its reference (the previous
//! frame) was decoded; [`Media::Vp8`] runs the real libvpx encoder and decoder on the test
//! pattern. Audio is a 20 ms packet stream of Opus-sized packets. RTP goes across as the
//! session's [`RtpOut`] and RTCP as [`RtcpOut`], received as what the other side's webrtc-rs
//! would decode ([`crate::rtp::as_received`]; `rtc.rs` tests that the wire gives the same).
//!
//! What a scenario returns ([`Report`]): both sides' per-second statistics (the same
//! [`StatsPoint`]s a real call publishes) and every frame each side decoded, with when.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dyad_media::VideoFormat;

use crate::media::{self, EncodedAudio, EncodedVideo, FrameToDecode, OPUS_BPS};
use crate::playout::PlayoutAction;
use crate::quality::StatsPoint;
use crate::rtp::{as_received, Feedback, Kind, RtcpOut, RtpIn, RtpOut, RTP_OVERHEAD};
use crate::session::counters::AudioDecodeCounts;
use crate::session::{
    CallSession, ClockAnchor, Input, Output, SessionConfig, SessionEvent, VideoDecoded,
};

/// SRTP's auth tag (16) + UDP/IPv4 (28): what a packet costs on the link beyond its RTP.
const WIRE_OVERHEAD: usize = 44;
/// Opus at 32 kbit/s with FEC: 80 bytes every 20 ms.
const AUDIO_PACKET: usize = 80;

/// Packet loss on a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// None.
    None,
    /// Each packet lost with this probability.
    Random(f64),
    /// Gilbert–Elliott: a good and a bad state; per packet, good → bad with `p_bad`,
    /// bad → good with `p_good`; packets are lost with `loss_bad` in the bad state (none in the
    /// good one). Mean loss = loss_bad · p_bad / (p_bad + p_good); mean burst 1 / p_good.
    Bursty {
        /// P(good → bad) per packet.
        p_bad: f64,
        /// P(bad → good) per packet.
        p_good: f64,
        /// Loss in the bad state.
        loss_bad: f64,
    },
}

/// One direction of the network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Propagation delay.
    pub delay: Duration,
    /// Extra delay per packet, uniform in [0, jitter].
    pub jitter: Duration,
    /// Whether jitter may reorder packets (else each packet waits for the one before it).
    pub reorder: bool,
    /// Loss.
    pub loss: Loss,
    /// Probability that a packet arrives twice.
    pub duplicate: f64,
    /// Bottleneck rate, bit/s (`None`: unlimited).
    pub rate_bps: Option<u64>,
    /// Bottleneck queue, bytes (drop-tail beyond it).
    pub queue_bytes: usize,
}

impl Default for Link {
    /// A clean link: 20 ms one way, nothing else.
    fn default() -> Self {
        Link {
            delay: Duration::from_millis(20),
            jitter: Duration::ZERO,
            reorder: false,
            loss: Loss::None,
            duplicate: 0.0,
            rate_bps: None,
            queue_bytes: 64 * 1024,
        }
    }
}

impl Link {
    /// A clean link capped at `bps` behind a drop-tail queue of one second at that rate (a home
    /// router's buffer: deep enough that congestion shows as delay before it shows as loss).
    pub fn capped(bps: u64) -> Self {
        Link {
            rate_bps: Some(bps),
            queue_bytes: (bps / 8) as usize,
            ..Link::default()
        }
    }

    /// The same with a queue of `ms` milliseconds (a shallow one overflows before delay grows).
    pub fn with_queue_ms(self, ms: u64) -> Self {
        let bps = self.rate_bps.unwrap_or(0);
        Link {
            queue_bytes: (bps / 8 * ms / 1000) as usize,
            ..self
        }
    }
}

/// Which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// From A to B.
    AtoB,
    /// From B to A.
    BtoA,
    /// Both.
    Both,
}

/// What the sides send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// Frame-size model (cheap; see the module docs).
    Model,
    /// libvpx on the test pattern (real bitstreams; costs real CPU).
    Vp8,
}

/// One simulated call.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// How long, seconds.
    pub seconds: f64,
    /// Everything random comes from here.
    pub seed: u64,
    /// The network at the start: A → B and B → A.
    pub links: (Link, Link),
    /// Changes: (at seconds, which way, the new link).
    pub changes: Vec<(f64, Way, Link)>,
    /// What is sent.
    pub media: Media,
    /// Capture size and rate (both sides).
    pub format: VideoFormat,
    /// Where both estimators start, bit/s.
    pub start_bps: u64,
    /// Feed this much junk RTCP (valid structure, absurd content) into A every 100 ms.
    pub garbage_rtcp: bool,
    /// The (video, audio) payload types the offer chose; both sides negotiate and send these
    /// (ours are 96 and 111; aiortc offers 97 and 96).
    pub payload_types: (u8, u8),
    /// Media this way carries a payload type that was never negotiated (a broken peer).
    pub foreign_payload_type: Option<Way>,
    /// Both sides negotiated transport-wide congestion control (the header extension and its
    /// feedback). Off: a peer like aiortc, which sends neither, so the estimate runs on
    /// receiver reports alone.
    pub transport_cc: bool,
    /// Both cameras' own latency: a frame reaches the encoder this long after its capture
    /// time (real cameras: 50–150 ms).
    pub camera_latency: Duration,
    /// Both microphones' own latency likewise (a Bluetooth headset: 100–200 ms).
    pub mic_latency: Duration,
    /// Both sessions run lip sync (off: measured only).
    pub lip_sync: bool,
}

impl Scenario {
    /// `seconds` on `link` both ways: model media at 640×480@30, estimate from 300 kbit/s.
    pub fn new(seconds: f64, link: Link) -> Self {
        Scenario {
            seconds,
            seed: 1,
            links: (link, link),
            changes: Vec::new(),
            media: Media::Model,
            format: VideoFormat {
                width: 640,
                height: 480,
                fps: 30,
            },
            start_bps: 300_000,
            garbage_rtcp: false,
            payload_types: (crate::rtc::VP8_PAYLOAD_TYPE, crate::rtc::OPUS_PAYLOAD_TYPE),
            foreign_payload_type: None,
            transport_cc: true,
            camera_latency: Duration::ZERO,
            mic_latency: Duration::ZERO,
            lip_sync: true,
        }
    }

    /// From `at` seconds on, `way` is `link`.
    pub fn change(mut self, at: f64, way: Way, link: Link) -> Self {
        self.changes.push((at, way, link));
        self
    }
}

/// A frame one side decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoded {
    /// Simulated seconds since the start.
    pub at: f64,
    /// The frame number the sender put in it.
    pub frame: u32,
    /// Capture → decoded, ms.
    pub delay_ms: f64,
}

/// What one side saw.
#[derive(Debug, Clone, Default)]
pub struct SideReport {
    /// Its per-second statistics.
    pub points: Vec<StatsPoint>,
    /// Every video frame it decoded (of the other side's stream), in order.
    pub decoded: Vec<Decoded>,
    /// Its estimate sampled every 100 ms: (seconds, target bit/s).
    pub targets: Vec<(f64, u64)>,
    /// Queueing delay on its outgoing link sampled every 100 ms: (seconds, ms).
    pub queue_ms: Vec<(f64, f64)>,
    /// Whether its session declared the call's media failed.
    pub media_failed: bool,
    /// Audio packets it decoded.
    pub audio_decoded: u64,
    /// Every playout decision, with its time (s).
    pub playout: Vec<(f64, PlayoutAction)>,
    /// Every audio packet played: (seconds, capture → played, ms).
    pub audio_played: Vec<(f64, f64)>,
}

impl SideReport {
    /// The target at or just before `t` seconds.
    pub fn target_at(&self, t: f64) -> u64 {
        self.targets
            .iter()
            .take_while(|(at, _)| *at <= t + 1e-9)
            .last()
            .map_or(0, |x| x.1)
    }

    /// Frames decoded in [from, to) seconds.
    pub fn frames_between(&self, from: f64, to: f64) -> Vec<Decoded> {
        self.decoded
            .iter()
            .filter(|d| d.at >= from && d.at < to)
            .copied()
            .collect()
    }

    /// The longest time without a decoded frame within [from, to) seconds.
    pub fn longest_gap(&self, from: f64, to: f64) -> f64 {
        let mut last = from;
        let mut worst: f64 = 0.0;
        for d in self.decoded.iter().filter(|d| d.at >= from && d.at < to) {
            worst = worst.max(d.at - last);
            last = d.at;
        }
        worst.max(to - last)
    }
}

/// What a scenario produced.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// A's side (it decodes B's video).
    pub a: SideReport,
    /// B's side (it decodes A's video).
    pub b: SideReport,
    /// Packets the network carried, dropped by loss, and dropped by a full queue.
    pub packets: (u64, u64, u64),
}

/// Deterministic xorshift64*.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug)]
enum Packet {
    Rtp(RtpOut),
    Rtcp(RtcpOut),
}

impl Packet {
    fn wire_size(&self) -> usize {
        WIRE_OVERHEAD
            + match self {
                Packet::Rtp(p) => p.payload.len() + RTP_OVERHEAD,
                // Close enough for the link's accounting: RTCP is a small share.
                Packet::Rtcp(RtcpOut::TransportFeedback { packets, .. }) => 20 + 2 * packets.len(),
                Packet::Rtcp(RtcpOut::Nack { seqs, .. }) => 12 + 2 * seqs.len(),
                Packet::Rtcp(RtcpOut::Reports {
                    senders, blocks, ..
                }) => 8 + 28 * senders.len() + 24 * blocks.len(),
                Packet::Rtcp(RtcpOut::Pli { .. }) => 12,
            }
    }
}

/// One direction of the network, as a queue with a clock.
#[derive(Debug)]
struct Path {
    link: Link,
    rng: Rng,
    bad_state: bool,
    /// When the bottleneck is free again (µs).
    busy_until: u64,
    /// The last delivery time (µs), for links that keep order.
    last_arrival: u64,
    carried: u64,
    lost: u64,
    overflowed: u64,
}

impl Path {
    fn new(link: Link, seed: u64) -> Self {
        Path {
            link,
            rng: Rng::new(seed),
            bad_state: false,
            busy_until: 0,
            last_arrival: 0,
            carried: 0,
            lost: 0,
            overflowed: 0,
        }
    }

    fn lost(&mut self) -> bool {
        match self.link.loss {
            Loss::None => false,
            Loss::Random(p) => self.rng.unit() < p,
            Loss::Bursty {
                p_bad,
                p_good,
                loss_bad,
            } => {
                let flip = self.rng.unit();
                self.bad_state = if self.bad_state {
                    flip >= p_good
                } else {
                    flip < p_bad
                };
                self.bad_state && self.rng.unit() < loss_bad
            }
        }
    }

    /// Queueing delay now, ms.
    fn queue_ms(&self, now: u64) -> f64 {
        self.busy_until.saturating_sub(now) as f64 / 1000.0
    }

    /// When (µs) the packet arrives, possibly twice; empty if it is lost.
    fn send(&mut self, now: u64, size: usize) -> Vec<u64> {
        let start = self.busy_until.max(now);
        if let Some(rate) = self.link.rate_bps.filter(|r| *r > 0) {
            let queued_bytes = (start - now) as u128 * u128::from(rate) / 8 / 1_000_000;
            if queued_bytes as usize + size > self.link.queue_bytes {
                self.overflowed += 1;
                return Vec::new();
            }
            self.busy_until = start + (size as u64 * 8 * 1_000_000) / rate;
        } else {
            self.busy_until = now;
        }
        if self.lost() {
            self.lost += 1;
            return Vec::new();
        }
        self.carried += 1;
        let base = self.busy_until + self.link.delay.as_micros() as u64;
        let mut times = vec![base + self.jitter()];
        if self.rng.unit() < self.link.duplicate {
            times.push(base + self.jitter());
        }
        if !self.link.reorder {
            for t in &mut times {
                *t = (*t).max(self.last_arrival);
                self.last_arrival = *t;
            }
        }
        times
    }

    fn jitter(&mut self) -> u64 {
        let j = self.link.jitter.as_micros() as u64;
        if j == 0 {
            0
        } else {
            self.rng.next() % (j + 1)
        }
    }
}

/// What one side's encoder does.
enum Encoder {
    Model { rng: Rng },
    Vp8(Box<dyad_media::Vp8Encoder>, u64),
}

enum Decoder {
    Model { last: Option<u32> },
    Vp8(Box<dyad_media::Vp8Decoder>),
}

struct Side {
    session: CallSession,
    ssrc: (u32, u32),
    encoder: Encoder,
    decoder: Decoder,
    format: VideoFormat,
    frame: u32,
    keyframe: bool,
    target: u64,
    step: u32,
    audio_seq: u32,
    audio: AudioDecodeCounts,
    timeout_at: u64,
    report: SideReport,
}

#[derive(Debug)]
enum Event {
    Timeout,
    Frame,
    Audio,
    Deliver(Packet),
    Decoded(Result<VideoDecoded, ()>),
    Garbage,
    Sample,
}

/// Runs a scenario (see the module docs).
pub fn run(s: &Scenario) -> Report {
    Sim::new(s).run()
}

struct Sim<'a> {
    s: &'a Scenario,
    t0: Instant,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<(usize, Event)>>,
    free: Vec<usize>,
    sides: [Side; 2],
    paths: [Path; 2],
    changes: VecDeque<(u64, Way, Link)>,
    rng: Rng,
}

impl<'a> Sim<'a> {
    fn new(s: &'a Scenario) -> Self {
        let t0 = Instant::now();
        let side = |ssrc: (u32, u32), seed: u64| {
            let cfg = SessionConfig {
                start_bps: s.start_bps,
                format: s.format,
                corrupt_every: None,
                clock: ClockAnchor {
                    at: t0,
                    unix_us: 1_700_000_000_000_000,
                },
                lip_sync: s.lip_sync,
            };
            let (encoder, decoder) = match s.media {
                Media::Model => (
                    Encoder::Model {
                        rng: Rng::new(seed),
                    },
                    Decoder::Model { last: None },
                ),
                Media::Vp8 => {
                    let kbps = (s.start_bps.saturating_sub(u64::from(OPUS_BPS)) / 1000) as u32;
                    let enc = dyad_media::Vp8Encoder::new(dyad_media::Vp8Config::realtime(
                        s.format.width,
                        s.format.height,
                        s.format.fps,
                        kbps.max(50),
                    ))
                    .expect("the test pattern's format is a valid VP8 configuration");
                    let dec = dyad_media::Vp8Decoder::new(1).expect("libvpx makes a decoder");
                    (Encoder::Vp8(Box::new(enc), 0), Decoder::Vp8(Box::new(dec)))
                }
            };
            Side {
                session: CallSession::new(cfg, t0),
                ssrc,
                encoder,
                decoder,
                format: s.format,
                frame: 0,
                keyframe: true,
                target: 0,
                step: 1,
                audio_seq: 0,
                audio: AudioDecodeCounts::default(),
                timeout_at: u64::MAX,
                report: SideReport::default(),
            }
        };
        let mut changes: Vec<_> = s
            .changes
            .iter()
            .map(|&(at, way, link)| ((at * 1e6) as u64, way, link))
            .collect();
        changes.sort_by_key(|c| c.0);
        Sim {
            s,
            t0,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free: Vec::new(),
            sides: [side((0xa1, 0xa2), s.seed), side((0xb1, 0xb2), s.seed ^ 0xb)],
            paths: [
                Path::new(s.links.0, s.seed.wrapping_add(100)),
                Path::new(s.links.1, s.seed.wrapping_add(200)),
            ],
            changes: changes.into(),
            rng: Rng::new(s.seed.wrapping_add(300)),
        }
    }

    fn instant(&self, us: u64) -> Instant {
        self.t0 + Duration::from_micros(us)
    }

    fn at(&mut self, us: u64, side: usize, e: Event) {
        let slot = match self.free.pop() {
            Some(i) => {
                self.events[i] = Some((side, e));
                i
            }
            None => {
                self.events.push(Some((side, e)));
                self.events.len() - 1
            }
        };
        self.seq += 1;
        self.queue.push(Reverse((us, self.seq, slot)));
    }

    fn run(mut self) -> Report {
        let end = (self.s.seconds * 1e6) as u64;
        for side in 0..2 {
            let (other_v, other_a) = self.sides[1 - side].ssrc;
            let (v, a) = self.sides[side].ssrc;
            self.input(side, Input::LocalSsrcs { video: v, audio: a });
            let (video_pt, audio_pt) = self.s.payload_types;
            self.input(
                side,
                Input::RemoteTrack {
                    kind: Kind::Video,
                    ssrc: other_v,
                    payload_types: vec![video_pt],
                },
            );
            self.input(
                side,
                Input::RemoteTrack {
                    kind: Kind::Audio,
                    ssrc: other_a,
                    payload_types: vec![audio_pt],
                },
            );
            self.input(side, Input::Answered);
            self.input(side, Input::Connected);
            self.sides[side].target = self.sides[side].session.video_target_bps();
            // The two sides' capture clocks are not in step.
            self.at(side as u64 * 7_000, side, Event::Frame);
            self.at(side as u64 * 3_000, side, Event::Audio);
            self.at(0, side, Event::Sample);
        }
        if self.s.garbage_rtcp {
            self.at(50_000, 0, Event::Garbage);
        }
        while let Some(Reverse((t, _, slot))) = self.queue.pop() {
            if t > end {
                break;
            }
            self.now = t;
            while self.changes.front().is_some_and(|c| c.0 <= t) {
                if let Some((_, way, link)) = self.changes.pop_front() {
                    if way != Way::BtoA {
                        self.paths[0].link = link;
                    }
                    if way != Way::AtoB {
                        self.paths[1].link = link;
                    }
                }
            }
            let Some((side, event)) = self.events[slot].take() else {
                continue;
            };
            self.free.push(slot);
            self.handle(side, event);
        }
        let packets = (
            self.paths.iter().map(|p| p.carried).sum(),
            self.paths.iter().map(|p| p.lost).sum(),
            self.paths.iter().map(|p| p.overflowed).sum(),
        );
        let [a, b] = self.sides;
        Report {
            a: a.report,
            b: b.report,
            packets,
        }
    }

    fn handle(&mut self, side: usize, event: Event) {
        match event {
            Event::Timeout => {
                if self.sides[side].timeout_at == self.now {
                    self.sides[side].timeout_at = u64::MAX;
                    self.input(side, Input::Timeout);
                }
            }
            Event::Frame => {
                let interval = 1_000_000 / u64::from(self.s.format.fps.max(1));
                self.at(self.now + interval, side, Event::Frame);
                self.input(side, Input::Captured);
                if let Some(v) = self.encode(side) {
                    self.input(side, Input::Video(v));
                }
            }
            Event::Audio => {
                self.at(self.now + 20_000, side, Event::Audio);
                let s = &mut self.sides[side];
                let n = s.audio_seq;
                s.audio_seq += 1;
                let capture_us = self.sides[side]
                    .session_clock_us(self.now)
                    .saturating_sub(self.s.mic_latency.as_micros() as u64);
                let mut data = vec![0u8; AUDIO_PACKET];
                data[..4].copy_from_slice(&n.to_le_bytes());
                // The capture time travels in the packet, for measuring lip sync at the far end.
                data[4..12].copy_from_slice(&capture_us.to_le_bytes());
                self.input(
                    side,
                    Input::Audio(EncodedAudio {
                        data: Bytes::from(data),
                        rtp_timestamp: n.wrapping_mul(960),
                        capture_us,
                        level_dbfs: -20.0,
                    }),
                );
            }
            Event::Deliver(p) => {
                let arrival = self.instant(self.now);
                let input = match p {
                    Packet::Rtp(p) => {
                        let from = self.sides[1 - side].ssrc;
                        let way = if side == 1 { Way::AtoB } else { Way::BtoA };
                        let payload_type = match (self.s.foreign_payload_type, p.kind) {
                            (Some(w), _) if w == way || w == Way::Both => 100,
                            (_, Kind::Video) => self.s.payload_types.0,
                            (_, Kind::Audio) => self.s.payload_types.1,
                        };
                        Input::Rtp(RtpIn {
                            kind: p.kind,
                            payload_type,
                            ssrc: if p.kind == Kind::Video {
                                from.0
                            } else {
                                from.1
                            },
                            seq: p.seq,
                            timestamp: p.timestamp,
                            marker: p.marker,
                            payload: p.payload,
                            transport_seq: self.s.transport_cc.then_some(p.transport_seq),
                            arrival,
                        })
                    }
                    Packet::Rtcp(r) => Input::Rtcp(as_received(&r)),
                };
                self.input(side, input);
            }
            Event::Decoded(r) => {
                let input = match r {
                    Ok(d) => {
                        let at = self.now as f64 / 1e6;
                        if let Some(frame) = d.marker_frame {
                            self.sides[side].report.decoded.push(Decoded {
                                at,
                                frame,
                                delay_ms: d.latency.map_or(f64::NAN, |l| l.as_secs_f64() * 1e3),
                            });
                        }
                        Input::VideoDecoded(d)
                    }
                    Err(()) => Input::VideoUndecodable,
                };
                self.input(side, input);
            }
            Event::Garbage => {
                self.at(self.now + 100_000, side, Event::Garbage);
                let junk = self.garbage();
                self.input(side, Input::Rtcp(junk));
            }
            Event::Sample => {
                self.at(self.now + 100_000, side, Event::Sample);
                let t = self.now as f64 / 1e6;
                let target = self.sides[side].session.estimator().target_bps();
                let q = self.paths[side].queue_ms(self.now);
                let r = &mut self.sides[side].report;
                r.targets.push((t, target));
                r.queue_ms.push((t, q));
            }
        }
    }

    /// Feeds `side`'s session and carries out what it asks.
    fn input(&mut self, side: usize, input: Input) {
        let now = self.instant(self.now);
        self.sides[side].session.handle_input(now, input);
        loop {
            let out = self.sides[side].session.poll_output();
            match out {
                Output::Rtp(p) => self.transmit(side, Packet::Rtp(p)),
                Output::Rtcp(r) => self.transmit(side, Packet::Rtcp(r)),
                Output::VideoTarget(bps) => self.sides[side].target = bps,
                Output::Keyframe => self.sides[side].keyframe = true,
                Output::DecodeVideo(f) => self.decode(side, f),
                Output::PlayAudio(action) => {
                    // A model decoder: every packet decodes, FEC and concealment always work.
                    let s = &mut self.sides[side];
                    let t = now.saturating_duration_since(self.t0).as_secs_f64();
                    let now_us = s.session_clock_us(self.now);
                    match &action {
                        PlayoutAction::Decode { payload, .. } => {
                            s.audio.decoded += 1;
                            s.report.audio_decoded += 1;
                            if let Some(b) = payload.get(4..12).and_then(|b| b.try_into().ok()) {
                                let captured = u64::from_le_bytes(b);
                                let ms = now_us.saturating_sub(captured) as f64 / 1e3;
                                s.report.audio_played.push((t, ms));
                            }
                        }
                        PlayoutAction::Fec { .. } => s.audio.recovered += 1,
                        PlayoutAction::Conceal => s.audio.concealed += 1,
                    }
                    s.report.playout.push((t, action));
                    let counts = s.audio;
                    s.session.handle_input(now, Input::AudioDecoded(counts));
                }
                Output::Event(SessionEvent::Stats(p)) => self.sides[side].report.points.push(*p),
                Output::Event(SessionEvent::MediaFailed) => {
                    self.sides[side].report.media_failed = true
                }
                Output::Event(SessionEvent::FirstRemoteFrame(_)) => {}
                Output::Timeout(at) => {
                    let us = at.saturating_duration_since(self.t0).as_micros() as u64;
                    let s = &mut self.sides[side];
                    if us != s.timeout_at {
                        s.timeout_at = us;
                        self.at(us, side, Event::Timeout);
                    }
                    return;
                }
            }
        }
    }

    fn transmit(&mut self, from: usize, p: Packet) {
        let size = p.wire_size();
        let times = self.paths[from].send(self.now, size);
        let to = 1 - from;
        let n = times.len();
        let mut p = Some(p);
        for (i, t) in times.into_iter().enumerate() {
            let packet = if i + 1 == n {
                p.take()
            } else {
                p.as_ref().map(duplicate)
            };
            if let Some(packet) = packet {
                self.at(t, to, Event::Deliver(packet));
            }
        }
    }

    fn encode(&mut self, side: usize) -> Option<EncodedVideo> {
        let capture_us = self.sides[side]
            .session_clock_us(self.now)
            .saturating_sub(self.s.camera_latency.as_micros() as u64);
        let s = &mut self.sides[side];
        let n = s.frame;
        s.frame += 1;
        let key = std::mem::take(&mut s.keyframe);
        s.step = media::ladder_step((s.format.width, s.format.height), s.target, s.step);
        let (w, h) = (
            (s.format.width / s.step) & !1,
            (s.format.height / s.step) & !1,
        );
        let fps = u64::from(s.format.fps.max(1));
        let rtp_timestamp = (u128::from(capture_us) * 90 / 1000) as u32;
        let (data, keyframe) = match &mut s.encoder {
            Encoder::Model { rng } => {
                let mean = (s.target / fps / 8).max(200) as f64;
                let size = if key {
                    3.0 * mean
                } else {
                    mean * (0.85 + 0.3 * rng.unit())
                };
                (model_frame(n, key, capture_us, size as usize), key)
            }
            Encoder::Vp8(enc, bps) => {
                if s.target.abs_diff(*bps) * 20 > *bps {
                    *bps = s.target;
                    let _ = enc.set_bitrate((*bps / 1000).max(30) as u32);
                }
                if (enc.config().width, enc.config().height) != (w, h) {
                    let _ = enc.set_resolution(w, h);
                }
                if key {
                    enc.request_keyframe();
                }
                let picture = dyad_media::testpattern::render(w, h, n, capture_us).ok()?;
                match enc.encode(&picture) {
                    Ok(Some(f)) => (f.data, f.keyframe),
                    _ => {
                        s.keyframe |= key;
                        return None;
                    }
                }
            }
        };
        Some(EncodedVideo {
            data: Bytes::from(data),
            keyframe,
            rtp_timestamp,
            capture_us,
            encode_time: Duration::from_millis(2),
            width: w,
            height: h,
        })
    }

    fn decode(&mut self, side: usize, f: FrameToDecode) {
        let now_us = self.sides[side].session_clock_us(self.now);
        let s = &mut self.sides[side];
        let result = match &mut s.decoder {
            Decoder::Model { last } => match read_model_frame(&f.data) {
                Some((n, key, capture_us)) if key || last.is_some_and(|l| n == l + 1) => {
                    *last = Some(n);
                    Ok(VideoDecoded {
                        decode_time: Duration::from_millis(1),
                        width: s.format.width,
                        height: s.format.height,
                        marker_frame: Some(n),
                        latency: Some(Duration::from_micros(
                            (now_us + 1000).saturating_sub(capture_us),
                        )),
                        black: false,
                        rtp_timestamp: f.rtp_timestamp,
                    })
                }
                _ => Err(()),
            },
            Decoder::Vp8(dec) => match dec.decode(&f.data, 0) {
                Ok(Some(picture)) => {
                    let marker = dyad_media::read_marker(&picture).ok();
                    Ok(VideoDecoded {
                        decode_time: Duration::from_millis(1),
                        width: picture.width(),
                        height: picture.height(),
                        marker_frame: marker.map(|m| m.frame),
                        latency: marker.map(|m| Duration::from_micros(m.age_us(now_us + 1000))),
                        black: false,
                        rtp_timestamp: f.rtp_timestamp,
                    })
                }
                Ok(None) => return,
                Err(_) => Err(()),
            },
        };
        // Decoding takes a millisecond.
        self.at(self.now + 1000, side, Event::Decoded(result));
    }

    /// RTCP with a valid structure and absurd content.
    fn garbage(&mut self) -> Vec<Feedback> {
        let r = &mut self.rng;
        let mut out = Vec::new();
        for _ in 0..4 {
            out.push(match r.next() % 6 {
                0 => Feedback::Nack {
                    media_ssrc: r.next() as u32,
                    seqs: (0..(r.next() % 40)).map(|_| r.next() as u16).collect(),
                },
                1 => Feedback::Transport(
                    (0..(r.next() % 50))
                        .map(|_| crate::bwe::PacketResult {
                            seq: r.next() as u16,
                            arrival_us: (r.next() % 3 != 0).then(|| r.next() as i64),
                        })
                        .collect(),
                ),
                2 => Feedback::ReceiverReport(crate::rtp::ReportBlock {
                    ssrc: if r.next() % 2 == 0 {
                        0xa1
                    } else {
                        r.next() as u32
                    },
                    fraction_lost: r.next() as u8,
                    total_lost: r.next() as u32,
                    highest_seq: r.next() as u32,
                    jitter: r.next() as u32,
                    last_sender_report: r.next() as u32,
                    delay: r.next() as u32,
                }),
                3 => Feedback::SenderReport {
                    ssrc: r.next() as u32,
                    ntp_time: r.next(),
                    rtp_time: r.next() as u32,
                    packets: r.next() as u32,
                    octets: r.next() as u32,
                },
                4 => Feedback::Fir,
                _ => Feedback::Pli,
            });
        }
        out
    }
}

impl Side {
    /// Microseconds on the sides' shared wall-clock scale at `sim_us`.
    fn session_clock_us(&self, sim_us: u64) -> u64 {
        1_700_000_000_000_000 + sim_us
    }
}

fn duplicate(p: &Packet) -> Packet {
    match p {
        Packet::Rtp(r) => Packet::Rtp(r.clone()),
        Packet::Rtcp(r) => Packet::Rtcp(r.clone()),
    }
}

/// A model VP8 frame: a real frame tag (keyframe bit and start code, so the frame assembler
/// sees what it would), then the frame number and capture time, then filler up to `size`.
fn model_frame(n: u32, key: bool, capture_us: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size.max(22)];
    v[0] = if key { 0x00 } else { 0x01 };
    if key {
        v[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
    }
    v[10..14].copy_from_slice(&n.to_le_bytes());
    v[14..22].copy_from_slice(&capture_us.to_le_bytes());
    v
}

/// (frame number, keyframe, capture µs) of a model frame.
fn read_model_frame(data: &[u8]) -> Option<(u32, bool, u64)> {
    let n = u32::from_le_bytes(data.get(10..14)?.try_into().ok()?);
    let t = u64::from_le_bytes(data.get(14..22)?.try_into().ok()?);
    Some((n, crate::jitter::is_keyframe(data), t))
}

#[cfg(test)]
mod tests;
