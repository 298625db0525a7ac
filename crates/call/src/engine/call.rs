//! The I/O of one call: its media session's outputs carried out (RTP and RTCP through the peer
//! connection, orders to the encoder threads, frames and packets to the decoder threads), and
//! what the peer connection and the media threads report fed back in.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use super::Client;
use crate::api::{CallEvent, ClientConfig};
use crate::error::Result;
use crate::machine::{CallMachine, Input, Phase};
use crate::media::{DecodeEvent, MediaRuntime, MediaWiring, SendEvent};
use crate::rtc::{ConnState, Kind, PathInfo, RtcEvent, RtcPeer};
use crate::session::{self, CallSession, ClockAnchor, Output, SessionConfig, SessionEvent};
use crate::stats::StatsHistory;
use dyad_proto::{CandidateKind, ClientMessage, EndReason, PathProtocol};

/// One call: its state machine, its media session, and the I/O they drive.
pub(super) struct Call {
    pub(super) m: CallMachine,
    pub(super) session: CallSession,
    /// When the session wants its next `Timeout`.
    pub(super) session_at: Instant,
    pub(super) peer: Option<RtcPeer>,
    /// Relayed candidates only (a call from someone who is not a contact).
    pub(super) relay_only: bool,
    pub(super) rtc_rx: mpsc::UnboundedReceiver<RtcEvent>,
    pub(super) rtc_tx: mpsc::UnboundedSender<RtcEvent>,
    pub(super) send_rx: mpsc::UnboundedReceiver<SendEvent>,
    pub(super) send_tx: mpsc::UnboundedSender<SendEvent>,
    pub(super) dec_rx: mpsc::UnboundedReceiver<DecodeEvent>,
    pub(super) dec_tx: mpsc::UnboundedSender<DecodeEvent>,
    pub(super) media: Option<MediaRuntime>,
    pub(super) pending_candidates: Vec<dyad_proto::Candidate>,
    pub(super) history: StatsHistory,
    pub(super) muted: (bool, bool),
    /// What the session said that the call machine must hear (media failed).
    pub(super) for_machine: VecDeque<Input>,
    /// The candidate pair last reported to the server (`path`), so it is sent once per change.
    pub(super) reported_path: Option<ClientMessage>,
}

impl Call {
    pub(super) fn new(m: CallMachine, config: &ClientConfig) -> Self {
        let (rtc_tx, rtc_rx) = mpsc::unbounded_channel();
        let (send_tx, send_rx) = mpsc::unbounded_channel();
        let (dec_tx, dec_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let unix_us = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let session = CallSession::new(
            SessionConfig {
                start_bps: config.start_bps,
                format: config.media.format,
                corrupt_every: config.corrupt_every,
                clock: ClockAnchor { at: now, unix_us },
                lip_sync: config.lip_sync,
            },
            now,
        );
        Self {
            m,
            session,
            session_at: now,
            peer: None,
            relay_only: false,
            rtc_rx,
            rtc_tx,
            send_rx,
            send_tx,
            dec_rx,
            dec_tx,
            media: None,
            pending_candidates: Vec::new(),
            history: StatsHistory::default(),
            muted: (false, false),
            for_machine: VecDeque::new(),
            reported_path: None,
        }
    }

    /// Feeds the session and carries out what it asks, until it waits for time.
    pub(super) async fn feed(
        &mut self,
        input: session::Input,
        events: &mpsc::UnboundedSender<CallEvent>,
    ) {
        self.session.handle_input(Instant::now(), input);
        self.drain(events).await;
    }

    pub(super) async fn drain(&mut self, events: &mpsc::UnboundedSender<CallEvent>) {
        loop {
            match self.session.poll_output() {
                Output::Rtp(p) => {
                    if let Some(peer) = &self.peer {
                        if let Err(e) = peer.write_rtp(p).await {
                            tracing::debug!(error = %e, "rtp write");
                        }
                    }
                }
                Output::Rtcp(p) => {
                    if let Some(peer) = &self.peer {
                        if let Err(e) = peer.write_rtcp(p).await {
                            tracing::debug!(error = %e, "rtcp write");
                        }
                    }
                }
                Output::VideoTarget(bps) => {
                    if let Some(m) = &self.media {
                        m.ctl.video_bps.store(bps, Ordering::Relaxed);
                    }
                }
                Output::Keyframe => {
                    if let Some(m) = &self.media {
                        m.ctl.keyframe.store(true, Ordering::Relaxed);
                    }
                }
                Output::DecodeVideo(f) => {
                    if let Some(m) = &self.media {
                        let _ = m.decode_video.send(f);
                    }
                }
                Output::PlayAudio(action) => {
                    if let Some(m) = &self.media {
                        let _ = m.decode_audio.send(action);
                    }
                }
                Output::Event(SessionEvent::Stats(point)) => {
                    self.history.push(point.snapshot.clone());
                    let _ = events.send(CallEvent::Stats(point));
                    // The path for the next second (webrtc-rs reads it asynchronously).
                    self.refresh_path();
                }
                Output::Event(SessionEvent::FirstRemoteFrame(after_answer)) => {
                    let _ = events.send(CallEvent::FirstRemoteFrame {
                        call_id: self.m.call_id.clone(),
                        after_answer,
                    });
                }
                Output::Event(SessionEvent::MediaFailed) => {
                    self.for_machine.push_back(Input::MediaFailed);
                }
                Output::Timeout(at) => {
                    self.session_at = at;
                    return;
                }
            }
        }
    }

    /// Reads the selected pair and DTLS state in the background; they come back as an event.
    pub(super) fn refresh_path(&self) {
        if let Some(peer) = &self.peer {
            peer.report_path();
        }
    }
}

/// The `path` message for a selected pair, if its types and protocol are known ones.
fn path_message(call_id: &str, p: &PathInfo) -> Option<ClientMessage> {
    let kind = |t: &str| match t {
        "host" => Some(CandidateKind::Host),
        "srflx" => Some(CandidateKind::Srflx),
        "prflx" => Some(CandidateKind::Prflx),
        "relay" => Some(CandidateKind::Relay),
        _ => None,
    };
    let protocol = match p.protocol.as_str() {
        "udp" => PathProtocol::Udp,
        "tcp" => PathProtocol::Tcp,
        "tls" => PathProtocol::Tls,
        _ => return None,
    };
    Some(ClientMessage::Path {
        call_id: call_id.to_string(),
        local: kind(&p.local_candidate_type)?,
        remote: kind(&p.remote_candidate_type)?,
        protocol,
    })
}

impl Client {
    /// Tells the server the call's candidate pair when media starts and whenever it changes
    /// (for the history: how calls connect, and how fast).
    async fn report_path(&mut self, p: &PathInfo) {
        let Some(call) = &mut self.call else { return };
        if !matches!(call.m.phase(), Phase::Connected) {
            return;
        }
        let Some(msg) = path_message(&call.m.call_id, p) else {
            return;
        };
        if call.reported_path.as_ref() == Some(&msg) {
            return;
        }
        call.reported_path = Some(msg.clone());
        self.send(msg).await;
    }

    pub(super) async fn finish(&mut self, mut call: Call) {
        // Stops the media threads (the decoder publishes nothing after this), then clears the
        // picture, so the next call never starts on this one's last frame.
        call.media = None;
        self.remote_video.send_replace(None);
        if let Some(peer) = call.peer.take() {
            peer.close().await;
        }
        let reason = match call.m.phase() {
            Phase::Ended(r) => *r,
            _ => EndReason::UserHangup,
        };
        self.emit(CallEvent::Ended {
            call_id: call.m.call_id.clone(),
            reason,
            stats: Arc::new(std::mem::take(&mut call.history)),
        });
    }

    // ---- media ----

    pub(super) async fn start_media(&mut self) -> Result<()> {
        let Some(call) = &mut self.call else {
            return Ok(());
        };
        let wiring = MediaWiring {
            send_events: call.send_tx.clone(),
            decode_events: call.dec_tx.clone(),
            remote_video: self.remote_video.clone(),
            self_view: self.self_view.clone(),
            speaker: Arc::clone(&self.audio_out),
        };
        let target = call.session.video_target_bps();
        call.media = Some(crate::media::start_media(
            &self.config.media,
            target,
            call.muted,
            wiring,
        )?);
        if let Some(peer) = &call.peer {
            let (video, audio) = (
                peer.local_ssrc(Kind::Video).await,
                peer.local_ssrc(Kind::Audio).await,
            );
            call.session
                .handle_input(Instant::now(), session::Input::LocalSsrcs { video, audio });
            peer.report_path();
        }
        let (audio, video) = call.muted;
        call.session
            .handle_input(Instant::now(), session::Input::Muted { audio, video });
        let media = &self.config.media;
        let uncancelled = media.audio.is_room() && !media.processing.echo_cancellation;
        call.session
            .handle_input(Instant::now(), session::Input::EchoControl { uncancelled });
        call.feed(session::Input::Connected, &self.events).await;
        Ok(())
    }

    pub(super) async fn on_send_event(&mut self, ev: SendEvent) {
        let Some(call) = &mut self.call else { return };
        let input = match ev {
            SendEvent::Captured => session::Input::Captured,
            SendEvent::EncoderDropped => session::Input::EncoderDropped,
            SendEvent::Video(v) => session::Input::Video(v),
            SendEvent::Audio(a) => session::Input::Audio(a),
            SendEvent::SourceFailed(message) => {
                return self.emit(CallEvent::Error {
                    code: "video_source_failed".into(),
                    message,
                });
            }
            SendEvent::MicrophoneReplaced(message) => {
                return self.emit(CallEvent::Error {
                    code: "microphone_replaced".into(),
                    message,
                });
            }
        };
        call.feed(input, &self.events).await;
    }

    pub(super) async fn on_decode_event(&mut self, ev: DecodeEvent) {
        let Some(call) = &mut self.call else { return };
        let input = match ev {
            DecodeEvent::Decoded(d) => session::Input::VideoDecoded(d),
            DecodeEvent::Undecodable => session::Input::VideoUndecodable,
            DecodeEvent::Audio(counts) => session::Input::AudioDecoded(counts),
            DecodeEvent::SpeakerReplaced(message) => {
                return self.emit(CallEvent::Error {
                    code: "speaker_replaced".into(),
                    message,
                });
            }
        };
        call.feed(input, &self.events).await;
    }

    pub(super) async fn on_rtc_event(&mut self, ev: RtcEvent) {
        if let RtcEvent::Path { path: Some(p), .. } = &ev {
            self.report_path(p).await;
        }
        let Some(call) = &mut self.call else { return };
        let input = match ev {
            RtcEvent::LocalCandidate(c) => return self.feed(Input::LocalCandidate(c)).await,
            RtcEvent::State(s) => {
                let input = match s {
                    ConnState::Connected => Input::IceConnected,
                    ConnState::Disconnected => Input::IceDisconnected,
                    ConnState::Failed => Input::IceFailed,
                    _ => return,
                };
                return self.feed(input).await;
            }
            RtcEvent::RemoteTrack {
                kind,
                ssrc,
                payload_types,
            } => session::Input::RemoteTrack {
                kind,
                ssrc,
                payload_types,
            },
            RtcEvent::Rtp(p) => session::Input::Rtp(p),
            RtcEvent::Rtcp(fb) => session::Input::Rtcp(fb),
            RtcEvent::Path { path, transport } => session::Input::Path {
                path,
                transport: Some(transport),
            },
        };
        call.feed(input, &self.events).await;
    }
}
