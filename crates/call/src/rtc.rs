//! The one module that touches webrtc-rs (`=0.17.2`).
//!
//! Everything webrtc-rs does through callbacks (local candidates, connection state, incoming
//! tracks, RTP, RTCP on every sender and receiver) is turned here into [`RtcEvent`]s on one
//! channel, which the call task owns. Nothing outside this module names a webrtc-rs type, so a
//! move to webrtc-rs 1.0 (the sans-IO `rtc` core) stays local to this file.
//!
//! What we use of webrtc-rs: ICE (trickle, restart, relay policy), DTLS-SRTP, the NACK
//! generator/responder, sender/receiver reports and the TWCC feedback generator (interceptors).
//! What we do ourselves: packetization and frame assembly (webrtc-rs's `SampleBuilder` holds a
//! frame until the next one starts), transport-wide sequence numbers on every packet we send (so
//! the bandwidth estimator knows each packet's send time), the bandwidth estimate and the stats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use webrtc::api::interceptor_registry::{configure_rtcp_reports, configure_twcc_receiver_only};
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use webrtc::dtls_transport::dtls_transport_state::RTCDtlsTransportState;
use webrtc::ice::candidate::CandidateType;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::nack::responder::Responder;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp;
use webrtc::rtp;
use webrtc::rtp::extension::transport_cc_extension::TransportCcExtension;
use webrtc::rtp::extension::HeaderExtension;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::stats::StatsReportType;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocal;

use crate::bwe::PacketResult;
use crate::error::{CallError, Result};

/// RTP payload type we offer for VP8.
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// RTP payload type we offer for Opus.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Largest RTP payload we produce (fits a 1280-byte path MTU with headers, SRTP and TURN).
pub const RTP_PAYLOAD_MTU: usize = 1100;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Opus.
    Audio,
    /// VP8.
    Video,
}

/// The peer connection's state, as W3C `RTCPeerConnectionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Not started.
    New,
    /// ICE/DTLS in progress.
    Connecting,
    /// Media can flow.
    Connected,
    /// Consent checks stopped answering (may recover).
    Disconnected,
    /// ICE failed (needs an ICE restart).
    Failed,
    /// Closed.
    Closed,
}

/// One RTP packet received.
#[derive(Debug, Clone)]
pub struct RtpIn {
    /// Audio or video.
    pub kind: Kind,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit (last packet of a video frame).
    pub marker: bool,
    /// Payload.
    pub payload: Bytes,
    /// When it reached us.
    pub arrival: Instant,
    /// Size on the wire (header + payload), for bitrate counting.
    pub size: usize,
}

/// RTCP we act on, decoded from webrtc-rs's packet types.
#[derive(Debug, Clone)]
pub enum Feedback {
    /// Picture loss: the remote wants a keyframe of our video.
    Pli,
    /// Full intra request: same as PLI for us.
    Fir,
    /// Negative acks: this many packets were asked for again.
    Nack(u32),
    /// A report block about one of our streams.
    ReceiverReport {
        /// Which of our streams.
        ssrc: u32,
        /// Loss since the last report, Q8.
        fraction_lost: u8,
        /// Cumulative packets lost.
        total_lost: u32,
        /// Interarrival jitter, RTP timestamp units.
        jitter: u32,
        /// Middle 32 bits of the NTP time of our last sender report.
        last_sender_report: u32,
        /// Delay since that report, 1/65536 s.
        delay: u32,
    },
    /// A sender report from the remote about its stream.
    SenderReport {
        /// Their stream.
        ssrc: u32,
        /// Packets they sent.
        packets: u32,
        /// Payload octets they sent.
        octets: u32,
    },
    /// Transport-wide congestion control feedback.
    Transport(Vec<PacketResult>),
}

/// What the peer connection tells the call task.
#[derive(Debug)]
pub enum RtcEvent {
    /// A local ICE candidate to trickle; `None` when gathering finished.
    LocalCandidate(Option<dyad_proto::Candidate>),
    /// Connection state changed.
    State(ConnState),
    /// The remote started sending a track of this kind.
    RemoteTrack {
        /// Which.
        kind: Kind,
        /// Its SSRC (for PLI).
        ssrc: u32,
    },
    /// An RTP packet.
    Rtp(RtpIn),
    /// RTCP packets.
    Rtcp(Vec<Feedback>),
}

/// The one SRTP protection profile we offer and accept (RFC 7714 AES-128-GCM). Offering only
/// this one means a connected call is known to use it: webrtc-rs does not expose the negotiated
/// profile, and every Dyad peer offers the same.
pub const SRTP_CIPHER: &str = "AEAD_AES_128_GCM";

/// W3C `transport` stats: how the media is encrypted.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TransportInfo {
    /// `new`, `connecting`, `connected`, `closed` or `failed`.
    pub dtls_state: String,
    /// DTLS version (webrtc-rs speaks DTLS 1.2 only).
    pub tls_version: String,
    /// The SRTP profile once DTLS is connected, else empty.
    pub srtp_cipher: String,
}

/// Where the selected candidate pair runs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct PathInfo {
    /// `host`, `srflx`, `prflx` or `relay`.
    pub local_candidate_type: String,
    /// Remote candidate type.
    pub remote_candidate_type: String,
    /// `ip:port`.
    pub local_address: String,
    /// `ip:port`.
    pub remote_address: String,
    /// `udp` or `tcp`.
    pub protocol: String,
    /// Current RTT from STUN consent checks, seconds.
    pub current_round_trip_time: f64,
}

impl PathInfo {
    /// The path in words: `direct (host) over UDP`, `via NAT (srflx) over UDP`,
    /// `relayed through TURN over TCP`; `direct (prflx)` when an address was learned from the
    /// connectivity checks (usually the peer's own, heard before its candidate arrived).
    pub fn describe(&self) -> String {
        let types = [
            self.local_candidate_type.as_str(),
            self.remote_candidate_type.as_str(),
        ];
        let how = if types.contains(&"relay") {
            "relayed through TURN".to_string()
        } else if types.contains(&"srflx") {
            "via NAT (srflx)".to_string()
        } else if types.contains(&"prflx") {
            "direct (prflx)".to_string()
        } else {
            format!("direct ({})", self.local_candidate_type)
        };
        format!("{how} over {}", self.protocol.to_uppercase())
    }
}

/// How the peer connection is set up.
#[derive(Debug, Clone, Default)]
pub struct RtcConfig {
    /// STUN/TURN servers (from the signalling server's `/v1/ice`).
    pub ice_servers: Vec<dyad_proto::http::IceServer>,
    /// Only use TURN relays (privacy, or tests of the relay path).
    pub relay_only: bool,
}

fn codecs() -> [(RTCRtpCodecParameters, RTPCodecType); 2] {
    let video_fb = vec![
        RTCPFeedback {
            typ: "nack".into(),
            parameter: String::new(),
        },
        RTCPFeedback {
            typ: "nack".into(),
            parameter: "pli".into(),
        },
        RTCPFeedback {
            typ: "ccm".into(),
            parameter: "fir".into(),
        },
    ];
    [
        (
            RTCRtpCodecParameters {
                capability: RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_VP8.to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: String::new(),
                    rtcp_feedback: video_fb,
                },
                payload_type: VP8_PAYLOAD_TYPE,
                ..Default::default()
            },
            RTPCodecType::Video,
        ),
        (
            RTCRtpCodecParameters {
                capability: RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                    rtcp_feedback: vec![],
                },
                payload_type: OPUS_PAYLOAD_TYPE,
                ..Default::default()
            },
            RTPCodecType::Audio,
        ),
    ]
}

fn rtc_err(what: &'static str) -> impl Fn(webrtc::Error) -> CallError {
    move |e| CallError::Rtc {
        what,
        detail: e.to_string(),
    }
}

/// One WebRTC peer connection with a VP8 and an Opus track each way.
pub struct RtcPeer {
    pc: Arc<RTCPeerConnection>,
    video: Arc<TrackLocalStaticRTP>,
    audio: Arc<TrackLocalStaticRTP>,
    events: mpsc::UnboundedSender<RtcEvent>,
    tracks_added: bool,
}

impl std::fmt::Debug for RtcPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtcPeer").finish_non_exhaustive()
    }
}

impl RtcPeer {
    /// Creates the peer connection. Events arrive on `events` until [`RtcPeer::close`].
    pub async fn new(config: &RtcConfig, events: mpsc::UnboundedSender<RtcEvent>) -> Result<Self> {
        let mut media = MediaEngine::default();
        for (codec, kind) in codecs() {
            media
                .register_codec(codec, kind)
                .map_err(rtc_err("register codec"))?;
        }
        // Reports, TWCC feedback and the NACK responder from webrtc-rs; NACKs we generate
        // ourselves (jitter.rs): its generator repeats every missing packet every 100 ms without
        // limit, which on a congested link became a storm (3 000 NACKs in 9 s at 400 kbit/s).
        let mut registry = configure_rtcp_reports(Registry::new());
        registry =
            configure_twcc_receiver_only(registry, &mut media).map_err(rtc_err("interceptors"))?;
        registry.add(Box::new(Responder::builder()));
        let mut settings = SettingEngine::default();
        settings.set_srtp_protection_profiles(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
        // Loopback is a real path for a local test call and for the embedded echo contact.
        settings.set_include_loopback_candidate(true);
        settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        // Detect a dead path in 3 s and call it failed at 8 s (defaults 5 s / 25 s): the call
        // task then restarts ICE, and a peer that is really gone ends the call soon after.
        settings.set_ice_timeouts(
            Some(Duration::from_secs(3)),
            Some(Duration::from_secs(8)),
            Some(Duration::from_millis(500)),
        );
        // A relayed pair is otherwise nominated only after 2 s of waiting for better ones.
        settings.set_relay_acceptance_min_wait(Some(Duration::from_millis(100)));
        settings.set_srflx_acceptance_min_wait(Some(Duration::from_millis(100)));
        settings.set_prflx_acceptance_min_wait(Some(Duration::from_millis(200)));
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .build();
        let rtc_config = RTCConfiguration {
            ice_servers: config
                .ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone().unwrap_or_default(),
                    credential: s.credential.clone().unwrap_or_default(),
                })
                .collect(),
            ice_transport_policy: if config.relay_only {
                RTCIceTransportPolicy::Relay
            } else {
                RTCIceTransportPolicy::All
            },
            ..Default::default()
        };
        let pc = Arc::new(
            api.new_peer_connection(rtc_config)
                .await
                .map_err(rtc_err("peer connection"))?,
        );
        let (video_codec, audio_codec) = {
            let [v, a] = codecs();
            (v.0.capability, a.0.capability)
        };
        let video = Arc::new(TrackLocalStaticRTP::new(
            video_codec,
            "video".into(),
            "dyad".into(),
        ));
        let audio = Arc::new(TrackLocalStaticRTP::new(
            audio_codec,
            "audio".into(),
            "dyad".into(),
        ));
        let peer = RtcPeer {
            pc,
            video,
            audio,
            events,
            tracks_added: false,
        };
        peer.install_handlers();
        Ok(peer)
    }

    fn install_handlers(&self) {
        let tx = self.events.clone();
        self.pc.on_ice_candidate(Box::new(move |c| {
            let candidate = c
                .and_then(|c| c.to_json().ok())
                .map(|init| dyad_proto::Candidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
                });
            let _ = tx.send(RtcEvent::LocalCandidate(candidate));
            Box::pin(async {})
        }));
        let tx = self.events.clone();
        self.pc.on_peer_connection_state_change(Box::new(move |s| {
            let state = match s {
                RTCPeerConnectionState::New | RTCPeerConnectionState::Unspecified => ConnState::New,
                RTCPeerConnectionState::Connecting => ConnState::Connecting,
                RTCPeerConnectionState::Connected => ConnState::Connected,
                RTCPeerConnectionState::Disconnected => ConnState::Disconnected,
                RTCPeerConnectionState::Failed => ConnState::Failed,
                RTCPeerConnectionState::Closed => ConnState::Closed,
            };
            let _ = tx.send(RtcEvent::State(state));
            Box::pin(async {})
        }));
        let tx = self.events.clone();
        self.pc
            .on_track(Box::new(move |track, receiver, _transceiver| {
                let tx = tx.clone();
                Box::pin(async move {
                    let kind = match track.kind() {
                        RTPCodecType::Audio => Kind::Audio,
                        _ => Kind::Video,
                    };
                    let expected = match kind {
                        Kind::Audio => OPUS_PAYLOAD_TYPE,
                        Kind::Video => VP8_PAYLOAD_TYPE,
                    };
                    let _ = tx.send(RtcEvent::RemoteTrack {
                        kind,
                        ssrc: track.ssrc(),
                    });
                    // RTCP on the receiver must be drained, or the interceptors stall.
                    let rtcp_tx = tx.clone();
                    tokio::spawn(async move {
                        while let Ok((packets, _)) = receiver.read_rtcp().await {
                            let fb = decode_rtcp(&packets);
                            if !fb.is_empty() && rtcp_tx.send(RtcEvent::Rtcp(fb)).is_err() {
                                break;
                            }
                        }
                    });
                    tokio::spawn(async move {
                        while let Ok((pkt, _)) = track.read_rtp().await {
                            if pkt.header.payload_type != expected {
                                // Only the codec we negotiated is ever decoded.
                                continue;
                            }
                            let size = 12 + pkt.payload.len();
                            let rtp = RtpIn {
                                kind,
                                seq: pkt.header.sequence_number,
                                timestamp: pkt.header.timestamp,
                                marker: pkt.header.marker,
                                payload: pkt.payload,
                                arrival: Instant::now(),
                                size,
                            };
                            if tx.send(RtcEvent::Rtp(rtp)).is_err() {
                                break;
                            }
                        }
                    });
                })
            }));
    }

    /// Adds our two tracks (once), before the offer or before applying the remote offer.
    async fn add_tracks(&mut self) -> Result<()> {
        if self.tracks_added {
            return Ok(());
        }
        self.tracks_added = true;
        for track in [
            Arc::clone(&self.video) as Arc<dyn TrackLocal + Send + Sync>,
            Arc::clone(&self.audio) as Arc<dyn TrackLocal + Send + Sync>,
        ] {
            let sender = self
                .pc
                .add_track(track)
                .await
                .map_err(rtc_err("add track"))?;
            let tx = self.events.clone();
            // Drained on every sender: PLI, NACK, receiver reports and TWCC arrive here.
            tokio::spawn(async move {
                while let Ok((packets, _)) = sender.read_rtcp().await {
                    let fb = decode_rtcp(&packets);
                    if !fb.is_empty() && tx.send(RtcEvent::Rtcp(fb)).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(())
    }

    /// Creates and applies an offer (optionally restarting ICE); returns its SDP.
    pub async fn create_offer(&mut self, ice_restart: bool) -> Result<String> {
        self.add_tracks().await?;
        let offer = self
            .pc
            .create_offer(Some(RTCOfferOptions {
                ice_restart,
                ..Default::default()
            }))
            .await
            .map_err(rtc_err("create offer"))?;
        let sdp = offer.sdp.clone();
        self.pc
            .set_local_description(offer)
            .await
            .map_err(rtc_err("set local offer"))?;
        Ok(sdp)
    }

    /// Applies the remote offer and returns our answer's SDP.
    pub async fn answer(&mut self, offer_sdp: &str) -> Result<String> {
        // Tracks first: webrtc-rs 0.17 pairs existing local transceivers with the offer's
        // m-lines while applying it; a track added afterwards gets a new, unnegotiated one.
        self.add_tracks().await?;
        let offer =
            RTCSessionDescription::offer(offer_sdp.to_owned()).map_err(|e| CallError::BadSdp {
                detail: e.to_string(),
            })?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| CallError::BadSdp {
                detail: e.to_string(),
            })?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|e| CallError::BadSdp {
                detail: e.to_string(),
            })?;
        let sdp = answer.sdp.clone();
        self.pc
            .set_local_description(answer)
            .await
            .map_err(rtc_err("set local answer"))?;
        check_negotiated(&sdp)?;
        Ok(sdp)
    }

    /// Applies the remote answer to our offer.
    pub async fn apply_answer(&mut self, answer_sdp: &str) -> Result<()> {
        let answer = RTCSessionDescription::answer(answer_sdp.to_owned()).map_err(|e| {
            CallError::BadSdp {
                detail: e.to_string(),
            }
        })?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| CallError::BadSdp {
                detail: e.to_string(),
            })?;
        check_negotiated(answer_sdp)
    }

    /// Whether a remote description has been applied (remote candidates need one).
    pub async fn has_remote_description(&self) -> bool {
        self.pc.remote_description().await.is_some()
    }

    /// Adds a trickled remote candidate.
    pub async fn add_remote_candidate(&self, c: &dyad_proto::Candidate) -> Result<()> {
        self.pc
            .add_ice_candidate(RTCIceCandidateInit {
                candidate: c.candidate.clone(),
                sdp_mid: c.sdp_mid.clone(),
                sdp_mline_index: c.sdp_mline_index,
                username_fragment: None,
            })
            .await
            .map_err(rtc_err("add candidate"))
    }

    /// Sends one RTP packet on our track of `kind`, tagged with a transport-wide sequence number.
    pub async fn write_rtp(&self, kind: Kind, out: RtpOut) -> Result<()> {
        let packet = rtp::packet::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: out.marker,
                sequence_number: out.seq,
                timestamp: out.timestamp,
                ..Default::default()
            },
            payload: out.payload,
        };
        let ext = [HeaderExtension::TransportCc(TransportCcExtension {
            transport_sequence: out.transport_seq,
        })];
        let track = match kind {
            Kind::Audio => &self.audio,
            Kind::Video => &self.video,
        };
        track
            .write_rtp_with_extensions(&packet, &ext)
            .await
            .map(|_| ())
            .map_err(rtc_err("write rtp"))
    }

    /// Asks the remote for a keyframe of its video stream `media_ssrc`.
    pub async fn send_pli(&self, media_ssrc: u32) -> Result<()> {
        let pli = rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        self.pc
            .write_rtcp(&[Box::new(pli)])
            .await
            .map(|_| ())
            .map_err(rtc_err("write rtcp"))
    }

    /// Asks the remote to resend these packets of its video stream `media_ssrc`.
    pub async fn send_nack(&self, media_ssrc: u32, seqs: &[u16]) -> Result<()> {
        use rtcp::transport_feedbacks::transport_layer_nack::{
            nack_pairs_from_sequence_numbers, TransportLayerNack,
        };
        let nack = TransportLayerNack {
            sender_ssrc: 0,
            media_ssrc,
            nacks: nack_pairs_from_sequence_numbers(seqs),
        };
        self.pc
            .write_rtcp(&[Box::new(nack)])
            .await
            .map(|_| ())
            .map_err(rtc_err("write rtcp"))
    }

    /// Our SSRC for `kind` (0 until negotiated).
    pub async fn local_ssrc(&self, kind: Kind) -> u32 {
        let want = match kind {
            Kind::Audio => RTPCodecType::Audio,
            Kind::Video => RTPCodecType::Video,
        };
        for sender in self.pc.get_senders().await {
            let Some(track) = sender.track().await else {
                continue;
            };
            if track.kind() == want {
                if let Some(enc) = sender.get_parameters().await.encodings.first() {
                    return enc.ssrc;
                }
            }
        }
        0
    }

    /// The selected candidate pair, if connected.
    pub async fn path(&self) -> Option<PathInfo> {
        let report = self.pc.get_stats().await;
        let pair = report.reports.values().find_map(|r| match r {
            StatsReportType::CandidatePair(p) if p.nominated => Some(p),
            _ => None,
        })?;
        let cand = |id: &str| {
            report.reports.get(id).and_then(|r| match r {
                StatsReportType::LocalCandidate(c) | StatsReportType::RemoteCandidate(c) => Some(c),
                _ => None,
            })
        };
        let local = cand(&pair.local_candidate_id)?;
        let remote = cand(&pair.remote_candidate_id)?;
        let kind = |t: CandidateType| match t {
            CandidateType::Host => "host",
            CandidateType::ServerReflexive => "srflx",
            CandidateType::PeerReflexive => "prflx",
            CandidateType::Relay => "relay",
            CandidateType::Unspecified => "unknown",
        };
        Some(PathInfo {
            local_candidate_type: kind(local.candidate_type).into(),
            remote_candidate_type: kind(remote.candidate_type).into(),
            local_address: format!("{}:{}", local.ip, local.port),
            remote_address: format!("{}:{}", remote.ip, remote.port),
            // W3C `protocol` is udp or tcp; webrtc-rs says udp4/udp6/tcp4/tcp6.
            protocol: local
                .network_type
                .to_string()
                .to_lowercase()
                .trim_end_matches(['4', '6'])
                .to_string(),
            current_round_trip_time: pair.current_round_trip_time,
        })
    }

    /// DTLS state and the SRTP cipher in use.
    pub fn transport(&self) -> TransportInfo {
        let state = self.pc.dtls_transport().state();
        TransportInfo {
            dtls_state: match state {
                RTCDtlsTransportState::New | RTCDtlsTransportState::Unspecified => "new",
                RTCDtlsTransportState::Connecting => "connecting",
                RTCDtlsTransportState::Connected => "connected",
                RTCDtlsTransportState::Closed => "closed",
                RTCDtlsTransportState::Failed => "failed",
            }
            .into(),
            tls_version: "DTLS 1.2".into(),
            srtp_cipher: if state == RTCDtlsTransportState::Connected {
                SRTP_CIPHER.into()
            } else {
                String::new()
            },
        }
    }

    /// Closes the connection; events stop.
    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// One RTP packet to send (payload type and SSRC come from the negotiated track).
#[derive(Debug, Clone)]
pub struct RtpOut {
    /// Sequence number (per stream).
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Last packet of a frame.
    pub marker: bool,
    /// Payload.
    pub payload: Bytes,
    /// Transport-wide sequence number (shared by audio and video).
    pub transport_seq: u16,
}

/// An answer (or offer) that leaves neither VP8 nor Opus is a call with nothing to decode.
fn check_negotiated(sdp: &str) -> Result<()> {
    let has = |codec: &str| {
        sdp.lines()
            .any(|l| l.starts_with("a=rtpmap:") && l.to_ascii_lowercase().contains(codec))
    };
    if has("vp8/90000") || has("opus/48000") {
        Ok(())
    } else {
        Err(CallError::NoCommonCodec)
    }
}

fn decode_rtcp(packets: &[Box<dyn rtcp::packet::Packet + Send + Sync>]) -> Vec<Feedback> {
    use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
    use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
    let mut out = Vec::new();
    let mut report = |r: &rtcp::reception_report::ReceptionReport| {
        out.push(Feedback::ReceiverReport {
            ssrc: r.ssrc,
            fraction_lost: r.fraction_lost,
            total_lost: r.total_lost,
            jitter: r.jitter,
            last_sender_report: r.last_sender_report,
            delay: r.delay,
        })
    };
    let mut rest = Vec::new();
    for p in packets {
        let any = p.as_any();
        if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            rr.reports.iter().for_each(&mut report);
        } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
            sr.reports.iter().for_each(&mut report);
            rest.push(Feedback::SenderReport {
                ssrc: sr.ssrc,
                packets: sr.packet_count,
                octets: sr.octet_count,
            });
        } else if any.downcast_ref::<PictureLossIndication>().is_some() {
            rest.push(Feedback::Pli);
        } else if any.downcast_ref::<FullIntraRequest>().is_some() {
            rest.push(Feedback::Fir);
        } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
            let n: u32 = nack
                .nacks
                .iter()
                .map(|p| 1 + p.lost_packets.count_ones())
                .sum();
            rest.push(Feedback::Nack(n));
        } else if let Some(cc) = any.downcast_ref::<TransportLayerCc>() {
            rest.push(Feedback::Transport(crate::bwe::feedback_results(cc)));
        }
    }
    out.extend(rest);
    out
}

/// The current NTP time's middle 32 bits (RFC 3550 §6.4.1), to compute RTT from LSR/DLSR.
pub fn ntp_middle_32(now: std::time::SystemTime) -> u32 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let d = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (((secs & 0xffff) << 16) | (frac >> 16)) as u32
}

/// RTT from a report block: now − LSR − DLSR, all in 1/65536 s. `None` without an SR yet.
pub fn rtt_from_report(now_ntp_mid: u32, lsr: u32, dlsr: u32) -> Option<Duration> {
    if lsr == 0 {
        return None;
    }
    let rtt = now_ntp_mid.wrapping_sub(lsr).wrapping_sub(dlsr);
    // More than 60 s means clock trouble or a stale report.
    if rtt > 60 * 65_536 {
        return None;
    }
    Some(Duration::from_micros(u64::from(rtt) * 1_000_000 / 65_536))
}

/// Splits VP8 frames into RTP payloads (RFC 7741 descriptors with a 15-bit PictureID).
#[derive(Debug)]
pub struct Vp8Packetizer(rtp::codecs::vp8::Vp8Payloader);

impl Default for Vp8Packetizer {
    fn default() -> Self {
        let mut p = rtp::codecs::vp8::Vp8Payloader::default();
        p.enable_picture_id = true;
        Self(p)
    }
}

impl Vp8Packetizer {
    /// The payloads of one frame, each ≤ [`RTP_PAYLOAD_MTU`] bytes.
    pub fn packetize(&mut self, frame: &Bytes) -> Vec<Bytes> {
        use rtp::packetizer::Payloader;
        self.0.payload(RTP_PAYLOAD_MTU, frame).unwrap_or_default()
    }
}

#[cfg(test)]
mod path_tests {
    use super::PathInfo;

    #[test]
    fn paths_read_in_words() {
        let p = |l: &str, r: &str, proto: &str| PathInfo {
            local_candidate_type: l.into(),
            remote_candidate_type: r.into(),
            protocol: proto.into(),
            ..Default::default()
        };
        assert_eq!(
            p("host", "host", "udp").describe(),
            "direct (host) over UDP"
        );
        assert_eq!(
            p("srflx", "host", "udp").describe(),
            "via NAT (srflx) over UDP"
        );
        assert_eq!(
            p("host", "prflx", "udp").describe(),
            "direct (prflx) over UDP"
        );
        assert_eq!(
            p("srflx", "prflx", "udp").describe(),
            "via NAT (srflx) over UDP"
        );
        assert_eq!(
            p("host", "relay", "tcp").describe(),
            "relayed through TURN over TCP"
        );
    }
}
