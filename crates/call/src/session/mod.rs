//! One call's media, sans-IO: [`CallSession`].
//!
//! In the style of str0m's `Rtc`: no socket, thread, lock or clock. The driver
//! ([`crate::engine`]) feeds [`Input`]s with the time they happened — RTP and RTCP from the peer
//! connection, encoded frames from the encoder threads, results from the decoder threads,
//! timeouts — and then drains [`CallSession::poll_output`] until it returns
//! [`Output::Timeout`]: RTP and RTCP to send, bitrate and keyframe orders for the encoder,
//! frames and packets to decode, events, and when to call again. [`crate::sim`] runs two
//! sessions against each other over a simulated network in simulated time.
//!
//! What it owns: the VP8 packetizer, the transport-wide sequence, the retransmission buffer
//! (the NACK responder), the bandwidth estimator, the frame assembler, the NACK and keyframe
//! request policy, TWCC feedback and RTCP sender/receiver reports, media-failed detection and
//! the statistics. webrtc-rs (behind [`crate::rtc`]) does ICE, DTLS and SRTP and puts our RTP and
//! RTCP on the wire.

pub mod counters;
mod reports;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dyad_media::VideoFormat;

use crate::bwe::{BandwidthEstimator, BweConfig};
use crate::jitter::{FrameAssembler, JitterConfig, JitterEvent};
use crate::media::{self, EncodedAudio, EncodedVideo, FrameToDecode, OPUS_BPS};
use crate::quality::{Context, Nominal, StatsPoint};
use crate::rtc::{PathInfo, TransportInfo, Vp8Packetizer};
use crate::rtp::{Feedback, Kind, RtcpOut, RtpIn, RtpOut, RTP_OVERHEAD};
use counters::{AudioDecodeCounts, Counters, Scorer};
use reports::Reports;

/// With packets of a kind arriving but not one frame of it decoded this long after connecting,
/// the call has failed (`media_failed`): a broken peer, not a bad network.
pub const MEDIA_FAILED_AFTER: Duration = Duration::from_secs(8);
/// Keyframe requests (PLI) we send at most this often.
pub const PLI_INTERVAL: Duration = Duration::from_millis(200);
/// How often statistics are published.
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Video packets kept for retransmission (webrtc-rs's responder kept as many).
pub const RETRANSMIT_BUFFER: usize = 1024;
/// How much the lip-sync hold of one video frame may differ from the frame's before it.
const HOLD_STEP: Duration = Duration::from_millis(5);
/// Opus's algorithmic delay (libopus's encoder lookahead at 48 kHz: 312 samples): the decoded
/// sound of a packet lags its RTP time by this, which lip sync counts as audio delay.
const OPUS_LOOKAHEAD_US: u64 = 6_500;
/// Complete video frames held for lip sync at most (400 ms at 60 fps, doubled).
const MAX_HELD_FRAMES: usize = 48;
/// RTT assumed for NACK spacing before a receiver report has measured one.
const DEFAULT_RTT: Duration = Duration::from_millis(50);

/// A wall-clock reading taken together with an `Instant`: how the session turns `now` into NTP
/// time (sender reports) and Unix time (snapshot timestamps) without reading a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockAnchor {
    /// The instant.
    pub at: Instant,
    /// Microseconds since the Unix epoch at that instant.
    pub unix_us: u64,
}

impl ClockAnchor {
    /// Unix µs at `now` on the anchor's scale.
    pub fn unix_us(&self, now: Instant) -> u64 {
        self.unix_us + now.saturating_duration_since(self.at).as_micros() as u64
    }
}

/// How a session is set up.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Where the bandwidth estimate starts, bit/s.
    pub start_bps: u64,
    /// What the camera sends when nothing limits it (the bitrate cap and the score's reference).
    pub format: VideoFormat,
    /// Fault injection for tests of the receive side: corrupt every Nth encoded video frame
    /// (`Some(1)`: every frame). Never set in normal use.
    pub corrupt_every: Option<u32>,
    /// The clock mapping (see [`ClockAnchor`]).
    pub clock: ClockAnchor,
    /// Hold back whichever of the other side's audio and video is ahead ([`crate::sync`]).
    /// Off, the offset is still measured and shown (benchmarks compare the two).
    pub lip_sync: bool,
}

/// A decoded video frame, as the decode thread reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoDecoded {
    /// Decoder time.
    pub decode_time: Duration,
    /// Size.
    pub width: u32,
    /// Size.
    pub height: u32,
    /// The test pattern's frame number, when the picture carries one.
    pub marker_frame: Option<u32>,
    /// Capture → decoded, when the picture carries a test-pattern marker (same clock).
    pub latency: Option<Duration>,
    /// The picture is the sender's camera-off black.
    pub black: bool,
    /// The frame's RTP timestamp (lip sync maps it to the capture time).
    pub rtp_timestamp: u32,
}

/// What happened.
#[derive(Debug)]
pub enum Input {
    /// Negotiation gave our streams these SSRCs.
    LocalSsrcs {
        /// Video.
        video: u32,
        /// Audio.
        audio: u32,
    },
    /// The remote started sending a stream.
    RemoteTrack {
        /// Which kind.
        kind: Kind,
        /// Its SSRC.
        ssrc: u32,
        /// The payload types negotiated for our codec of this kind (the offerer's numbers, so
        /// not always ours): RTP with any other payload type is counted, never decoded.
        payload_types: Vec<u8>,
    },
    /// The answer was applied (caller) or created (callee): the first-frame clock starts.
    Answered,
    /// The peer connection connected for the first time: media and statistics start.
    Connected,
    /// An RTP packet arrived.
    Rtp(RtpIn),
    /// RTCP arrived.
    Rtcp(Vec<Feedback>),
    /// The source delivered a frame (counts toward captured fps).
    Captured,
    /// The encoder's rate control skipped a frame.
    EncoderDropped,
    /// An encoded video frame to send.
    Video(EncodedVideo),
    /// An encoded audio packet to send.
    Audio(EncodedAudio),
    /// The decode thread decoded a video frame.
    VideoDecoded(VideoDecoded),
    /// The decoder rejected a frame: a keyframe is needed.
    VideoUndecodable,
    /// The audio decode thread's counts so far.
    AudioDecoded(AudioDecodeCounts),
    /// Whether the other side may hear their own voice back: our microphone is in a room
    /// (not a synthetic source) and its echo cancellation is off.
    EchoControl {
        /// Echo goes back uncancelled.
        uncancelled: bool,
    },
    /// The user switched microphone / camera off or on.
    Muted {
        /// Microphone off.
        audio: bool,
        /// Camera off.
        video: bool,
    },
    /// The selected candidate pair and the DTLS state, as the peer connection reports them.
    Path {
        /// Selected pair.
        path: Option<PathInfo>,
        /// DTLS-SRTP.
        transport: Option<TransportInfo>,
    },
    /// Something the statistics should mark (`ice_restart`).
    Note(&'static str),
    /// The deadline from [`Output::Timeout`] passed.
    Timeout,
}

/// What the session wants done.
#[derive(Debug)]
pub enum Output {
    /// Send this RTP packet.
    Rtp(RtpOut),
    /// Send this RTCP.
    Rtcp(RtcpOut),
    /// The video encoder's new target, bit/s.
    VideoTarget(u64),
    /// The video encoder must make a keyframe next.
    Keyframe,
    /// Decode this video frame.
    DecodeVideo(FrameToDecode),
    /// The audio jitter buffer's decision for the next 20 ms of playout (one every 20 ms once
    /// audio arrives, in playout order).
    PlayAudio(crate::playout::PlayoutAction),
    /// Tell the owner.
    Event(SessionEvent),
    /// Nothing more now: feed [`Input::Timeout`] at this instant (or any input before).
    Timeout(Instant),
}

/// What the owner hears.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// One second of statistics, scored.
    Stats(Box<StatsPoint>),
    /// The first remote video frame decoded, this long after the answer.
    FirstRemoteFrame(Duration),
    /// Packets arrive but nothing decodes: end the call (`media_failed`).
    MediaFailed,
}

/// A sent video packet kept for retransmission.
#[derive(Debug, Clone)]
struct Sent {
    seq: u16,
    timestamp: u32,
    marker: bool,
    payload: Bytes,
}

/// One call's media session (see the module docs).
#[derive(Debug)]
pub struct CallSession {
    cfg: SessionConfig,
    nominal: Nominal,
    /// The latest `now` fed in.
    now: Instant,
    out: VecDeque<Output>,
    // Send side.
    packetizer: Vp8Packetizer,
    video_seq: u16,
    audio_seq: u16,
    transport_seq: u64,
    sent_video: VecDeque<Sent>,
    bwe: BandwidthEstimator,
    video_target: u64,
    local_ssrc: (u32, u32),
    // Receive side.
    remote_ssrc: (Option<u32>, Option<u32>),
    /// Negotiated payload types of the remote's (video, audio).
    remote_payload_types: (Vec<u8>, Vec<u8>),
    assembler: FrameAssembler,
    /// The audio jitter buffer.
    playout: crate::playout::AudioPlayout,
    /// Lip sync.
    sync: crate::sync::AvSync,
    /// Complete frames held back for lip sync (release time, frame), in order.
    held_video: VecDeque<(Instant, FrameToDecode)>,
    /// The hold the last frame got: it follows lip sync's by ≤ 5 ms a frame, so that a new
    /// hold slows a few frames down a little instead of stopping the picture.
    video_hold: Duration,
    last_pli: Option<Instant>,
    reports: Reports,
    // Call state.
    answered_at: Option<Instant>,
    connected_at: Option<Instant>,
    next_stats: Option<Instant>,
    /// When media-failed detection first looks (8 s after connecting); `None` once it has.
    media_check_at: Option<Instant>,
    /// Media-failed detection is over: failed, or both kinds decoded something.
    media_checked: bool,
    first_frame_seen: bool,
    muted: (bool, bool),
    /// See [`Input::EchoControl`].
    echo_uncancelled: bool,
    remote_camera_off: bool,
    path: Option<PathInfo>,
    transport: Option<TransportInfo>,
    counters: Counters,
    scorer: Scorer,
}

impl CallSession {
    /// A new session at `now`; nothing is sent until inputs arrive.
    pub fn new(cfg: SessionConfig, now: Instant) -> Self {
        let mut bwe = BandwidthEstimator::new(
            BweConfig {
                start_bps: cfg.start_bps,
                ..BweConfig::default()
            },
            now,
        );
        let cap = media::max_bps_for(cfg.format.width, cfg.format.height);
        bwe.set_max(cap + u64::from(OPUS_BPS));
        let nominal = Nominal {
            width: cfg.format.width,
            height: cfg.format.height,
            fps: f64::from(cfg.format.fps.max(1)),
        };
        let video_target = bwe.target_bps().saturating_sub(u64::from(OPUS_BPS));
        let lip_sync = cfg.lip_sync;
        CallSession {
            reports: Reports::new(now),
            cfg,
            nominal,
            now,
            out: VecDeque::new(),
            packetizer: Vp8Packetizer::default(),
            video_seq: 0,
            audio_seq: 0,
            transport_seq: 0,
            sent_video: VecDeque::new(),
            bwe,
            video_target,
            local_ssrc: (0, 0),
            remote_ssrc: (None, None),
            remote_payload_types: (Vec::new(), Vec::new()),
            assembler: FrameAssembler::new(JitterConfig::default()),
            playout: crate::playout::AudioPlayout::new(),
            sync: crate::sync::AvSync::new(lip_sync),
            held_video: VecDeque::new(),
            video_hold: Duration::ZERO,
            last_pli: None,
            answered_at: None,
            connected_at: None,
            next_stats: None,
            media_check_at: None,
            media_checked: false,
            first_frame_seen: false,
            muted: (false, false),
            echo_uncancelled: false,
            remote_camera_off: false,
            path: None,
            transport: None,
            counters: Counters::default(),
            scorer: Scorer::new(nominal),
        }
    }

    /// The video encoder's target now, bit/s (for starting the encoder).
    pub fn video_target_bps(&self) -> u64 {
        self.video_target
    }

    /// The estimator (read-only: tests and benchmarks look at it).
    pub fn estimator(&self) -> &BandwidthEstimator {
        &self.bwe
    }

    /// The statistics counters so far (read-only).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Feeds one input that happened at `now`.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::LocalSsrcs { video, audio } => self.local_ssrc = (video, audio),
            Input::RemoteTrack {
                kind,
                ssrc,
                payload_types,
            } => match kind {
                Kind::Video => {
                    self.remote_ssrc.0 = Some(ssrc);
                    self.remote_payload_types.0 = payload_types;
                }
                Kind::Audio => {
                    self.remote_ssrc.1 = Some(ssrc);
                    self.remote_payload_types.1 = payload_types;
                }
            },
            Input::Answered => {
                self.answered_at.get_or_insert(now);
            }
            Input::Connected => {
                if self.connected_at.is_none() {
                    self.connected_at = Some(now);
                    self.next_stats = Some(now + STATS_INTERVAL);
                    self.media_check_at = Some(now + MEDIA_FAILED_AFTER);
                    self.counters.start(now);
                }
            }
            Input::Rtp(p) => self.on_rtp(now, p),
            Input::Rtcp(fbs) => self.on_rtcp(now, fbs),
            Input::Captured => self.counters.frames_captured += 1,
            Input::EncoderDropped => self.counters.video_out.frames_dropped_by_encoder += 1,
            Input::Video(v) => self.send_video(now, v),
            Input::Audio(a) => self.send_audio(now, a),
            Input::VideoDecoded(d) => {
                if !self.first_frame_seen {
                    self.first_frame_seen = true;
                    if let Some(at) = self.answered_at {
                        self.out
                            .push_back(Output::Event(SessionEvent::FirstRemoteFrame(
                                now.saturating_duration_since(at),
                            )));
                    }
                }
                self.remote_camera_off = d.black;
                self.sync
                    .on_video_shown(self.cfg.clock.unix_us(now), d.rtp_timestamp);
                self.counters.decoded(now, &d);
            }
            Input::VideoUndecodable => {
                self.counters.video_in.frames_dropped += 1;
                self.request_keyframe(now);
            }
            Input::AudioDecoded(a) => self.counters.audio_decode = a,
            Input::Muted { audio, video } => self.muted = (audio, video),
            Input::EchoControl { uncancelled } => self.echo_uncancelled = uncancelled,
            Input::Path { path, transport } => {
                self.path = path;
                self.transport = transport;
            }
            Input::Note(e) => self.counters.event(e),
            Input::Timeout => {}
        }
        self.on_time(now);
    }

    /// The next thing to do; [`Output::Timeout`] when there is nothing more until then.
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        Output::Timeout(self.next_timeout())
    }

    fn next_timeout(&self) -> Instant {
        let rtt = self.rtt();
        let candidates = [
            self.assembler.next_timeout(),
            self.assembler.next_nack_at(rtt),
            self.playout.next_pull(),
            self.held_video.front().map(|(at, _)| *at),
            self.next_stats,
            self.reports.next_due(self.connected_at.is_some()),
            self.media_check_at,
        ];
        let next = candidates
            .into_iter()
            .flatten()
            .min()
            // Nothing pending: wake up once a second anyway (cheap, and a driver that missed an
            // input still catches up).
            .unwrap_or(self.now + Duration::from_secs(1));
        // Never in the past: a deadline that stays due would spin the driver.
        next.max(self.now + Duration::from_millis(1))
    }

    fn rtt(&self) -> Duration {
        self.counters
            .remote_video
            .round_trip_time
            .map_or(DEFAULT_RTT, Duration::from_secs_f64)
    }

    /// Everything that is due at `now`.
    fn on_time(&mut self, now: Instant) {
        self.drain_assembler(now);
        self.release_video(now);
        while let Some(action) = self.playout.pull(now) {
            if let crate::playout::PlayoutAction::Decode { rtp_timestamp, .. } = &action {
                // What the decoder makes of it is the sound of OPUS_LOOKAHEAD earlier.
                let heard = self.cfg.clock.unix_us(now) + OPUS_LOOKAHEAD_US;
                self.sync.on_audio_played(heard, *rtp_timestamp);
            }
            self.out.push_back(Output::PlayAudio(action));
        }
        self.send_nacks(now);
        if let Some(rtcp) = self.reports.poll_twcc(now, self.remote_ssrc) {
            self.out.push_back(Output::Rtcp(rtcp));
        }
        if self.connected_at.is_some() {
            let now_us = self.cfg.clock.unix_us(now);
            let loss = (&mut self.counters.video_loss, &mut self.counters.audio_loss);
            let jitter = (&self.counters.video_jitter, &self.counters.audio_jitter);
            if let Some(rtcp) = self.reports.poll_reports(
                now,
                now_us,
                self.local_ssrc,
                self.remote_ssrc,
                loss,
                jitter,
            ) {
                self.out.push_back(Output::Rtcp(rtcp));
            }
        }
        self.check_media(now);
        if self.next_stats.is_some_and(|t| now >= t) {
            self.next_stats = Some(now + STATS_INTERVAL);
            self.publish_stats(now);
        }
    }

    /// What a sender report ties RTP time to: the capture time, unless the source did not say
    /// (0: the echo contact resends decoded media) or said something from another clock (more
    /// than 5 s away: a file's own stamps); then the send time, as before lip sync.
    fn capture_time(&self, capture_us: u64, now: Instant) -> u64 {
        let now_us = self.cfg.clock.unix_us(now);
        if capture_us == 0 || capture_us.abs_diff(now_us) > 5_000_000 {
            now_us
        } else {
            capture_us
        }
    }

    fn ntp(&self, now: Instant) -> u64 {
        crate::rtp::ntp_from_unix_us(self.cfg.clock.unix_us(now))
    }

    // ---- send side ----

    fn next_transport_seq(&mut self, size: usize, now: Instant) -> u16 {
        self.transport_seq += 1;
        self.bwe.on_packet_sent(self.transport_seq, size, now);
        self.transport_seq as u16
    }

    fn send_video(&mut self, now: Instant, v: EncodedVideo) {
        self.counters
            .encoded(v.keyframe, v.encode_time, (v.width, v.height));
        let data = match self.cfg.corrupt_every {
            Some(n) if n > 0 && self.counters.video_out.frames_encoded % u64::from(n) == 0 => {
                corrupt(&v.data)
            }
            _ => v.data,
        };
        let payloads = self.packetizer.packetize(&data);
        let n = payloads.len();
        for (i, payload) in payloads.into_iter().enumerate() {
            let transport_seq = self.next_transport_seq(payload.len() + RTP_OVERHEAD, now);
            self.video_seq = self.video_seq.wrapping_add(1);
            let o = &mut self.counters.video_out;
            o.packets_sent += 1;
            o.bytes_sent += payload.len() as u64;
            let captured = self.capture_time(v.capture_us, now);
            self.reports
                .on_sent(Kind::Video, v.rtp_timestamp, captured, payload.len());
            let sent = Sent {
                seq: self.video_seq,
                timestamp: v.rtp_timestamp,
                marker: i + 1 == n,
                payload,
            };
            if self.sent_video.len() >= RETRANSMIT_BUFFER {
                self.sent_video.pop_front();
            }
            self.sent_video.push_back(sent.clone());
            self.out.push_back(Output::Rtp(RtpOut {
                kind: Kind::Video,
                seq: sent.seq,
                timestamp: sent.timestamp,
                marker: sent.marker,
                payload: sent.payload,
                transport_seq,
            }));
        }
    }

    fn send_audio(&mut self, now: Instant, a: EncodedAudio) {
        let transport_seq = self.next_transport_seq(a.data.len() + RTP_OVERHEAD, now);
        self.audio_seq = self.audio_seq.wrapping_add(1);
        let o = &mut self.counters.audio_out;
        o.packets_sent += 1;
        o.bytes_sent += a.data.len() as u64;
        o.audio_level_dbfs = a.level_dbfs;
        let captured = self.capture_time(a.capture_us, now);
        self.reports
            .on_sent(Kind::Audio, a.rtp_timestamp, captured, a.data.len());
        self.out.push_back(Output::Rtp(RtpOut {
            kind: Kind::Audio,
            seq: self.audio_seq,
            timestamp: a.rtp_timestamp,
            marker: false,
            payload: a.data,
            transport_seq,
        }));
    }

    /// The NACK responder: packets still in the buffer go out again (same sequence number, a
    /// new transport-wide one so that the estimator sees them).
    fn retransmit(&mut self, now: Instant, seqs: &[u16]) {
        for &seq in seqs {
            // The buffer is in send order; find by distance from the newest.
            let Some(newest) = self.sent_video.back().map(|s| s.seq) else {
                return;
            };
            let back = usize::from(newest.wrapping_sub(seq));
            let Some(idx) = self.sent_video.len().checked_sub(back + 1) else {
                continue;
            };
            let Some(s) = self.sent_video.get(idx).filter(|s| s.seq == seq).cloned() else {
                continue;
            };
            let transport_seq = self.next_transport_seq(s.payload.len() + RTP_OVERHEAD, now);
            self.counters.video_out.retransmitted_packets_sent += 1;
            self.out.push_back(Output::Rtp(RtpOut {
                kind: Kind::Video,
                seq: s.seq,
                timestamp: s.timestamp,
                marker: s.marker,
                payload: s.payload,
                transport_seq,
            }));
        }
    }

    fn set_video_target(&mut self) {
        let target = self.bwe.target_bps().saturating_sub(u64::from(OPUS_BPS));
        if target != self.video_target {
            self.video_target = target;
            self.out.push_back(Output::VideoTarget(target));
        }
    }

    // ---- receive side ----

    fn on_rtp(&mut self, now: Instant, p: RtpIn) {
        if let Some(seq) = p.transport_seq {
            let arrival_us = now
                .saturating_duration_since(self.reports.epoch())
                .as_micros() as i64;
            self.reports.on_transport_arrival(seq, arrival_us, now);
        }
        let negotiated = match p.kind {
            Kind::Video => &self.remote_payload_types.0,
            Kind::Audio => &self.remote_payload_types.1,
        };
        if !negotiated.contains(&p.payload_type) {
            // Not our codec as negotiated: nothing here decodes it. Counted (and marked once),
            // so a peer that sends only such packets is a failed call, not a silent one.
            let c = &mut self.counters;
            let stats = match p.kind {
                Kind::Video => &mut c.video_in,
                Kind::Audio => &mut c.audio_in,
            };
            stats.packets_unknown_payload_type += 1;
            if stats.packets_unknown_payload_type == 1 {
                c.event(format!("unknown_payload_type {}", p.payload_type));
            }
            return;
        }
        let remote = match p.kind {
            Kind::Video => &mut self.remote_ssrc.0,
            Kind::Audio => &mut self.remote_ssrc.1,
        };
        remote.get_or_insert(p.ssrc);
        self.counters
            .received(p.kind, p.seq, p.timestamp, p.arrival, p.payload.len());
        match p.kind {
            Kind::Video => self.assembler.push(crate::jitter::RtpIn {
                seq: p.seq,
                timestamp: p.timestamp,
                marker: p.marker,
                payload: p.payload,
                arrival: p.arrival,
            }),
            Kind::Audio => self
                .playout
                .insert(p.arrival, p.seq, p.timestamp, p.payload),
        }
    }

    fn drain_assembler(&mut self, now: Instant) {
        let mut want_keyframe = false;
        while let Some(ev) = self.assembler.poll(now) {
            match ev {
                JitterEvent::Frame(f) => {
                    let i = &mut self.counters.video_in;
                    i.frames_received += 1;
                    i.jitter_buffer_delay +=
                        now.saturating_duration_since(f.first_arrival).as_secs_f64();
                    i.jitter_buffer_emitted_count += 1;
                    let frame = FrameToDecode {
                        data: f.data,
                        rtp_timestamp: f.rtp_timestamp,
                        complete_at: f.complete_at,
                    };
                    let wanted = self.sync.video_extra();
                    let hold = if wanted > self.video_hold {
                        (self.video_hold + HOLD_STEP).min(wanted)
                    } else {
                        self.video_hold.saturating_sub(HOLD_STEP).max(wanted)
                    };
                    self.video_hold = hold;
                    if hold.is_zero() && self.held_video.is_empty() {
                        self.out.push_back(Output::DecodeVideo(frame));
                    } else {
                        // Bounded by count too (a flood of tiny frames): the oldest goes early,
                        // nothing is dropped.
                        if self.held_video.len() >= MAX_HELD_FRAMES {
                            if let Some((_, f)) = self.held_video.pop_front() {
                                self.out.push_back(Output::DecodeVideo(f));
                            }
                        }
                        self.held_video.push_back((now + hold, frame));
                    }
                }
                JitterEvent::KeyframeNeeded => want_keyframe = true,
                JitterEvent::Dropped { frames, .. } => {
                    self.counters.video_in.frames_dropped += u64::from(frames);
                }
            }
        }
        if want_keyframe {
            self.request_keyframe(now);
        }
    }

    /// Frames held for lip sync whose time has come (in order: a frame never overtakes one
    /// held longer when the hold shrinks).
    fn release_video(&mut self, now: Instant) {
        while self.held_video.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, f)) = self.held_video.pop_front() {
                self.out.push_back(Output::DecodeVideo(f));
            }
        }
    }

    fn send_nacks(&mut self, now: Instant) {
        let Some(ssrc) = self.remote_ssrc.0 else {
            return;
        };
        let seqs = self.assembler.nacks(now, self.rtt());
        if !seqs.is_empty() {
            self.counters.video_in.nack_count += seqs.len() as u64;
            self.out.push_back(Output::Rtcp(RtcpOut::Nack {
                media_ssrc: ssrc,
                seqs,
            }));
        }
    }

    fn request_keyframe(&mut self, now: Instant) {
        if self
            .last_pli
            .is_some_and(|t| now.saturating_duration_since(t) < PLI_INTERVAL)
        {
            return;
        }
        let Some(ssrc) = self.remote_ssrc.0 else {
            return;
        };
        self.last_pli = Some(now);
        self.counters.video_in.pli_count += 1;
        self.counters.event("keyframe_request_sent");
        self.out
            .push_back(Output::Rtcp(RtcpOut::Pli { media_ssrc: ssrc }));
    }

    fn on_rtcp(&mut self, now: Instant, fbs: Vec<Feedback>) {
        let ntp_now = crate::rtp::ntp_middle(self.ntp(now));
        for fb in fbs {
            match fb {
                Feedback::Pli | Feedback::Fir => {
                    if matches!(fb, Feedback::Pli) {
                        self.counters.video_out.pli_count += 1;
                    } else {
                        self.counters.video_out.fir_count += 1;
                    }
                    self.counters.event("keyframe_request_received");
                    self.out.push_back(Output::Keyframe);
                }
                Feedback::Nack { media_ssrc, seqs } => {
                    if media_ssrc == self.local_ssrc.0 || self.local_ssrc.0 == 0 {
                        self.counters.video_out.nack_count += seqs.len() as u64;
                        self.retransmit(now, &seqs);
                    }
                }
                Feedback::ReceiverReport(b) => {
                    let rtt = crate::rtp::rtt_from_report(ntp_now, b.last_sender_report, b.delay);
                    let (r, rate) = if b.ssrc == self.local_ssrc.0 {
                        self.bwe.on_receiver_report(b.fraction_lost, rtt, now);
                        (&mut self.counters.remote_video, 90_000.0)
                    } else if b.ssrc == self.local_ssrc.1 {
                        (&mut self.counters.remote_audio, 48_000.0)
                    } else {
                        continue;
                    };
                    r.round_trip_time = rtt.map(|d| d.as_secs_f64()).or(r.round_trip_time);
                    r.fraction_lost = f64::from(b.fraction_lost) / 256.0;
                    r.packets_lost = u64::from(b.total_lost);
                    r.jitter = f64::from(b.jitter) / rate;
                }
                Feedback::SenderReport {
                    ssrc,
                    ntp_time,
                    rtp_time,
                    ..
                } => {
                    self.reports.on_sender_report(ssrc, ntp_time, now);
                    if Some(ssrc) == self.remote_ssrc.0 {
                        self.sync.on_sender_report(Kind::Video, ntp_time, rtp_time);
                    } else if Some(ssrc) == self.remote_ssrc.1 {
                        self.sync.on_sender_report(Kind::Audio, ntp_time, rtp_time);
                    }
                }
                Feedback::Transport(results) => self.bwe.on_transport_feedback(&results, now),
                Feedback::Remb(bps) => self.bwe.on_remb(bps),
            }
        }
        self.set_video_target();
    }

    // ---- call health and statistics ----

    /// From 8 s after connecting, at every input until both kinds have decoded something.
    fn check_media(&mut self, now: Instant) {
        if self.media_checked {
            return;
        }
        match (self.connected_at, self.media_check_at) {
            (Some(at), _) if now.saturating_duration_since(at) >= MEDIA_FAILED_AFTER => {
                self.media_check_at = None;
            }
            _ => return,
        }
        let c = &self.counters;
        // A kind whose packets arrive but of which not one frame ever decoded (keyframe requests
        // included) is a broken peer, not a bad network; so is one that sends only payload
        // types we did not negotiate.
        let arrived =
            |i: &crate::stats::InboundRtp| i.packets_received + i.packets_unknown_payload_type > 0;
        let video_dead = arrived(&c.video_in) && c.video_in.frames_decoded == 0;
        let audio_dead = arrived(&c.audio_in) && c.audio_decode.decoded == 0;
        if video_dead || audio_dead {
            self.media_checked = true;
            self.out.push_back(Output::Event(SessionEvent::MediaFailed));
        } else if c.video_in.frames_decoded > 0 && c.audio_decode.decoded > 0 {
            // Both decode: later trouble is a bad network, which the call rides out.
            self.media_checked = true;
        }
    }

    fn publish_stats(&mut self, now: Instant) {
        let Some(connected) = self.connected_at else {
            return;
        };
        if self.sync.update() {
            self.playout.set_extra_delay(self.sync.audio_extra());
        }
        self.counters.playout = self.playout.stats();
        self.counters.av_sync = self.sync.stats();
        let snap = self.counters.snapshot(
            now,
            now.saturating_duration_since(connected).as_secs_f64(),
            self.cfg.clock.unix_us(now) / 1000,
            self.nominal,
            self.local_ssrc,
            &self.bwe,
            self.path.clone(),
            self.transport.clone(),
        );
        let ctx = Context {
            local_camera_off: self.muted.1,
            remote_camera_off: self.remote_camera_off,
            // Muted, the microphone sends nothing, echo included.
            echo_uncancelled: self.echo_uncancelled && !self.muted.0,
        };
        let point = self.scorer.point(snap, ctx);
        self.out
            .push_back(Output::Event(SessionEvent::Stats(Box::new(point))));
    }
}

/// Keeps the frame's size and keyframe flag but scrambles its body: a decoder must reject it or
/// produce garbage, never crash.
fn corrupt(data: &Bytes) -> Bytes {
    let mut v = data.to_vec();
    let start = if v.len() > 10 { 10 } else { 0 };
    let mut x: u32 = 0x2545_f491;
    for b in v.iter_mut().skip(start) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    // An impossible partition size in the header makes libvpx refuse the frame outright.
    if v.len() > 2 {
        v[1] = 0xff;
        v[2] = 0xff;
    }
    Bytes::from(v)
}

#[cfg(test)]
mod tests;
