//! The one module that touches webrtc-rs (`=0.17.2`).
//!
//! webrtc-rs does ICE (trickle, restart, relay policy), DTLS and SRTP. Everything else about RTP
//! and RTCP is the call session's ([`crate::session`]): this module only puts its [`RtpOut`] and
//! [`RtcpOut`] on the wire and turns what arrives into [`RtpIn`] and [`Feedback`] (the plain types
//! of [`crate::rtp`]). No interceptor runs: reports, TWCC feedback and the NACK responder are the
//! session's, so the same code runs in a real call and in the simulated network ([`crate::sim`]).
//!
//! Everything webrtc-rs does through callbacks (local candidates, connection state, incoming
//! tracks, RTP, RTCP on every sender and receiver) is turned here into [`RtcEvent`]s on one
//! channel, which the call task owns. Nothing outside this module names a webrtc-rs type, so a
//! move to webrtc-rs 1.0 (the sans-IO `rtc` core) stays local to this file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use webrtc::dtls_transport::dtls_transport_state::RTCDtlsTransportState;
use webrtc::ice::candidate::CandidateType;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::interceptor::twcc::Recorder;
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
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability,
    RTCRtpParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::stats::StatsReportType;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocal;

use crate::bwe::PacketResult;
use crate::error::{CallError, Result};
pub use crate::rtp::Kind;
use crate::rtp::{Feedback, ReportBlock, RtcpOut, RtpIn, RtpOut};

/// The transport-wide sequence number header extension (draft-holmer-rmcat-transport-wide-cc-
/// extensions-01), negotiated for audio and video.
const TRANSPORT_CC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// RTP payload type we offer for VP8.
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// RTP payload type we offer for Opus.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Largest RTP payload we produce (fits a 1280-byte path MTU with headers, SRTP and TURN).
pub const RTP_PAYLOAD_MTU: usize = 1100;

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
        /// The payload types the negotiation gave our codec of this kind (the offerer's
        /// numbers: aiortc offers VP8 as 97 and Opus as 96).
        payload_types: Vec<u8>,
    },
    /// An RTP packet.
    Rtp(RtpIn),
    /// RTCP packets.
    Rtcp(Vec<Feedback>),
    /// The selected candidate pair and DTLS state (after [`RtcPeer::report_path`]).
    Path {
        /// Selected pair, once there is one.
        path: Option<PathInfo>,
        /// DTLS-SRTP.
        transport: TransportInfo,
    },
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
    /// What `turns:` relays are trusted with (the signalling server's roots); `None`: the
    /// system's and `$DYAD_CA_FILE`.
    pub turn_tls: Option<Arc<rustls::ClientConfig>>,
    /// How TURN over TCP/TLS reaches its server (through the signalling server's HTTP proxy,
    /// where there is one); the default connects directly.
    pub turn_route: crate::signal::StreamRoute,
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
    /// Builds TWCC feedback packets from the session's arrival lists (keeps the feedback count).
    twcc: std::sync::Mutex<Recorder>,
    /// The mid (and m-line index) our candidates belong to: the BUNDLE group's first, from our
    /// local description. webrtc-rs leaves trickled candidates with an empty mid.
    candidate_mid: Arc<std::sync::Mutex<Option<(String, u16)>>>,
    /// Our SDP and the remote's as negotiated (the DTLS fingerprints in them make the
    /// verification code).
    local_sdp: String,
    remote_sdp: String,
    /// TURN over TCP/TLS for the agent (which speaks TURN over UDP only): kept for the call.
    _shims: Vec<crate::turn_shim::TurnShim>,
    /// The relayed addresses granted through the shims, and over what.
    relayed: crate::turn_shim::Relayed,
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
        // No interceptors: reports, TWCC feedback, NACKs and their answers are the session's.
        // (webrtc-rs's NACK generator repeats every missing packet every 100 ms without limit:
        // on a congested link a storm of 3 000 NACKs in 9 s at 400 kbit/s.) What the
        // interceptors negotiated, we declare ourselves: transport-cc feedback and its header
        // extension on both kinds.
        for kind in [RTPCodecType::Video, RTPCodecType::Audio] {
            media.register_feedback(
                RTCPFeedback {
                    typ: "transport-cc".into(),
                    parameter: String::new(),
                },
                kind,
            );
            media
                .register_header_extension(
                    RTCRtpHeaderExtensionCapability {
                        uri: TRANSPORT_CC_URI.to_owned(),
                    },
                    kind,
                    None,
                )
                .map_err(rtc_err("header extension"))?;
        }
        let registry = Registry::new();
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
        // A peer-reflexive pair is nominated as soon as it works: it is what the other side's
        // checks came from when they beat its trickled candidates here (on loopback, half the
        // calls), and webrtc-rs only re-checks every 200 ms, so any wait costs a 200 ms tick.
        // Measured: answer → first frame had a 216–235 ms mode in 5–50 % of calls; with no
        // wait, 40 of 40 calls took 14–35 ms (docs/benchmarks.md).
        settings.set_prflx_acceptance_min_wait(Some(Duration::ZERO));
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .build();
        // TURN over TCP and TLS through local shims: the agent is given each as a UDP TURN
        // server on 127.0.0.1 with the same credentials.
        let relayed = crate::turn_shim::Relayed::default();
        let mut shims = Vec::new();
        let mut ice_servers = Vec::new();
        for s in &config.ice_servers {
            let mut urls = Vec::new();
            for url in &s.urls {
                let Some((kind, host, port)) = crate::turn_shim::parse_stream_url(url) else {
                    urls.push(url.clone());
                    continue;
                };
                let tls = match &config.turn_tls {
                    Some(t) => t.clone(),
                    None => crate::signal::turn_tls_config()?,
                };
                let route = config.turn_route.clone();
                match crate::turn_shim::TurnShim::start(
                    kind,
                    host,
                    port,
                    tls,
                    route,
                    relayed.clone(),
                )
                .await
                {
                    Ok(shim) => {
                        urls.push(format!("turn:{}?transport=udp", shim.local_addr()));
                        shims.push(shim);
                    }
                    Err(e) => tracing::warn!("{url}: no local TURN shim: {e}"),
                }
            }
            ice_servers.push(RTCIceServer {
                urls,
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            });
        }
        let rtc_config = RTCConfiguration {
            ice_servers,
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
            twcc: std::sync::Mutex::new(Recorder::new(0)),
            candidate_mid: Arc::default(),
            local_sdp: String::new(),
            remote_sdp: String::new(),
            _shims: shims,
            relayed,
        };
        peer.install_handlers();
        Ok(peer)
    }

    fn install_handlers(&self) {
        let tx = self.events.clone();
        let mid = Arc::clone(&self.candidate_mid);
        self.pc.on_ice_candidate(Box::new(move |c| {
            let bundle = mid.lock().ok().and_then(|m| m.clone());
            let candidate = c.and_then(|c| c.to_json().ok()).map(|init| {
                match (&bundle, init.sdp_mid.as_deref()) {
                    (Some((mid, index)), None | Some("")) => dyad_proto::Candidate {
                        candidate: init.candidate,
                        sdp_mid: Some(mid.clone()),
                        sdp_mline_index: Some(*index),
                    },
                    _ => dyad_proto::Candidate {
                        candidate: init.candidate,
                        sdp_mid: init.sdp_mid,
                        sdp_mline_index: init.sdp_mline_index,
                    },
                }
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
                    let params = [receiver.get_parameters().await, track.params()];
                    let _ = tx.send(RtcEvent::RemoteTrack {
                        kind,
                        ssrc: track.ssrc(),
                        payload_types: negotiated_payload_types(kind, &params),
                    });
                    // The id the transport-wide sequence number arrives under, as negotiated
                    // (the receiver's parameters; the track's own may not be filled in).
                    let twcc_id = params
                        .iter()
                        .flat_map(|p| p.header_extensions.iter())
                        .find(|e| e.uri == TRANSPORT_CC_URI)
                        .and_then(|e| u8::try_from(e.id).ok());
                    // RTCP on the receiver must be drained, or webrtc-rs's buffers fill.
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
                            let rtp = rtp_in(kind, twcc_id, pkt, Instant::now());
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
        self.note_bundle_mid(&sdp);
        self.local_sdp.clone_from(&sdp);
        self.pc
            .set_local_description(offer)
            .await
            .map_err(rtc_err("set local offer"))?;
        Ok(tidy_sdp(&sdp))
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
        self.note_bundle_mid(&sdp);
        self.local_sdp.clone_from(&sdp);
        offer_sdp.clone_into(&mut self.remote_sdp);
        self.pc
            .set_local_description(answer)
            .await
            .map_err(rtc_err("set local answer"))?;
        check_negotiated(&sdp)?;
        Ok(tidy_sdp(&sdp))
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
        answer_sdp.clone_into(&mut self.remote_sdp);
        check_negotiated(answer_sdp)
    }

    /// The verification code of this connection ([`crate::sas`]), once both descriptions are in.
    pub fn verification_code(&self) -> Option<String> {
        crate::sas::verification_code(&self.local_sdp, &self.remote_sdp)
    }

    /// Remembers the mid our trickled candidates belong to (before gathering starts).
    fn note_bundle_mid(&self, sdp: &str) {
        if let (Some(m), Ok(mut slot)) = (bundle_mid(sdp), self.candidate_mid.lock()) {
            *slot = Some(m);
        }
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

    /// Sends one RTP packet on our track of its kind, tagged with its transport-wide sequence
    /// number.
    pub async fn write_rtp(&self, out: RtpOut) -> Result<()> {
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
        let track = match out.kind {
            Kind::Audio => &self.audio,
            Kind::Video => &self.video,
        };
        track
            .write_rtp_with_extensions(&packet, &ext)
            .await
            .map(|_| ())
            .map_err(rtc_err("write rtp"))
    }

    /// Sends the session's RTCP.
    pub async fn write_rtcp(&self, out: RtcpOut) -> Result<()> {
        let packets = {
            let mut twcc = self.twcc.lock().map_err(|_| CallError::Rtc {
                what: "write rtcp",
                detail: "TWCC recorder poisoned".into(),
            })?;
            encode_rtcp(out, &mut twcc)
        };
        if packets.is_empty() {
            return Ok(());
        }
        self.pc
            .write_rtcp(&packets)
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

    /// Reads the selected candidate pair and the DTLS state in the background and sends them as
    /// [`RtcEvent::Path`] (webrtc-rs's stats are asynchronous; the call task does not wait).
    pub fn report_path(&self) {
        let pc = Arc::clone(&self.pc);
        let tx = self.events.clone();
        let relayed = self.relayed.clone();
        tokio::spawn(async move {
            let path = path_of(&pc, &relayed).await;
            let _ = tx.send(RtcEvent::Path {
                path,
                transport: transport_of(&pc),
            });
        });
    }

    /// Closes the connection; events stop.
    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// A received RTP packet as the session's [`RtpIn`], with the transport-wide sequence number
/// read from the header extension negotiated under `twcc_id`.
fn rtp_in(kind: Kind, twcc_id: Option<u8>, pkt: rtp::packet::Packet, arrival: Instant) -> RtpIn {
    let transport_seq = twcc_id
        .and_then(|id| pkt.header.get_extension(id))
        .and_then(|mut b| {
            use webrtc::util::Unmarshal;
            TransportCcExtension::unmarshal(&mut b).ok()
        })
        .map(|e| e.transport_sequence);
    RtpIn {
        kind,
        payload_type: pkt.header.payload_type,
        ssrc: pkt.header.ssrc,
        seq: pkt.header.sequence_number,
        timestamp: pkt.header.timestamp,
        marker: pkt.header.marker,
        payload: pkt.payload,
        transport_seq,
        arrival,
    }
}

/// The selected candidate pair, if connected.
async fn path_of(pc: &RTCPeerConnection, relayed: &crate::turn_shim::Relayed) -> Option<PathInfo> {
    let report = pc.get_stats().await;
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
        protocol: protocol_of(local, relayed),
        current_round_trip_time: pair.current_round_trip_time,
    })
}

/// The transport under a local candidate: W3C `protocol` (udp or tcp; webrtc-rs says
/// udp4/udp6/tcp4/tcp6), except that a relay granted through a TURN shim runs over `tcp` or
/// `tls` to the relay whatever the agent thinks.
fn protocol_of(
    local: &webrtc::stats::ICECandidateStats,
    relayed: &crate::turn_shim::Relayed,
) -> String {
    if local.candidate_type == CandidateType::Relay {
        let via = local
            .ip
            .parse()
            .ok()
            .map(|ip| std::net::SocketAddr::new(ip, local.port))
            .and_then(|addr| relayed.lock().ok()?.get(&addr).copied());
        match via {
            Some(crate::turn_shim::StreamKind::Tcp) => return "tcp".into(),
            Some(crate::turn_shim::StreamKind::Tls) => return "tls".into(),
            None => {}
        }
    }
    local
        .network_type
        .to_string()
        .to_lowercase()
        .trim_end_matches(['4', '6'])
        .to_string()
}

/// DTLS state and the SRTP cipher in use.
fn transport_of(pc: &RTCPeerConnection) -> TransportInfo {
    let state = pc.dtls_transport().state();
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

/// The BUNDLE group's first mid and the index of its m-line (else the first m-line's mid):
/// where a bundled session's candidates belong (RFC 8843 §7; JSEP's `sdpMid`).
fn bundle_mid(sdp: &str) -> Option<(String, u16)> {
    let tag = sdp
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=group:BUNDLE "))
        .and_then(|g| g.split_whitespace().next());
    let mut index: Option<u16> = None;
    let mut first = None;
    for line in sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            index = Some(index.map_or(0, |i| i.saturating_add(1)));
        } else if let (Some(mid), Some(i)) = (line.strip_prefix("a=mid:"), index) {
            if tag.is_none_or(|t| t == mid) {
                return Some((mid.to_string(), i));
            }
            first.get_or_insert((mid.to_string(), i));
        }
    }
    first
}

/// The SDP we send, as the grammar wants it: webrtc-rs writes `a=rtcp-fb:96 nack ` and
/// `transport-cc ` with a trailing space (RFC 4585's `rtcp-fb-val` has none, and libwebrtc and
/// aiortc then do not recognise generic NACK), and it copies `goog-remb` from an offer into
/// the answer although we never send REMB (we act on REMB we receive; the feedback a peer
/// needs from us is TWCC and receiver reports).
fn tidy_sdp(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end();
        if body.starts_with("a=rtcp-fb:") && body.ends_with(" goog-remb") {
            continue;
        }
        out.push_str(body);
        out.push_str(if line.ends_with("\r\n") {
            "\r\n"
        } else if line.ends_with('\n') {
            "\n"
        } else {
            ""
        });
    }
    out
}

/// The payload types negotiated for our codec of `kind` (VP8 or Opus), from the receiver's
/// parameters (and the track's, which webrtc-rs fills from the first packet).
fn negotiated_payload_types(kind: Kind, params: &[RTCRtpParameters]) -> Vec<u8> {
    let mime = match kind {
        Kind::Audio => MIME_TYPE_OPUS,
        Kind::Video => MIME_TYPE_VP8,
    };
    let mut pts: Vec<u8> = params
        .iter()
        .flat_map(|p| p.codecs.iter())
        .filter(|c| c.capability.mime_type.eq_ignore_ascii_case(mime))
        .map(|c| c.payload_type)
        .collect();
    pts.sort_unstable();
    pts.dedup();
    pts
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

type RtcpPackets = Vec<Box<dyn rtcp::packet::Packet + Send + Sync>>;

/// The session's RTCP as webrtc-rs packets (marshalled by webrtc-rs, then SRTCP).
fn encode_rtcp(out: RtcpOut, twcc: &mut Recorder) -> RtcpPackets {
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::reception_report::ReceptionReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::transport_feedbacks::transport_layer_nack::{
        nack_pairs_from_sequence_numbers, TransportLayerNack,
    };
    match out {
        RtcpOut::Pli { media_ssrc } => vec![Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        })],
        RtcpOut::Nack { media_ssrc, seqs } => vec![Box::new(TransportLayerNack {
            sender_ssrc: 0,
            media_ssrc,
            nacks: nack_pairs_from_sequence_numbers(&seqs),
        })],
        RtcpOut::TransportFeedback {
            media_ssrc,
            packets,
        } => {
            for (seq, arrival_us) in packets {
                twcc.record(media_ssrc, seq, arrival_us);
            }
            twcc.build_feedback_packet()
        }
        RtcpOut::Reports {
            senders,
            blocks,
            reporter_ssrc,
        } => {
            let mut reports: Vec<ReceptionReport> = blocks
                .iter()
                .map(|b| ReceptionReport {
                    ssrc: b.ssrc,
                    fraction_lost: b.fraction_lost,
                    total_lost: b.total_lost.min(0x7f_ffff),
                    last_sequence_number: b.highest_seq,
                    jitter: b.jitter,
                    last_sender_report: b.last_sender_report,
                    delay: b.delay,
                })
                .collect();
            if senders.is_empty() {
                return vec![Box::new(ReceiverReport {
                    ssrc: reporter_ssrc,
                    reports,
                    ..Default::default()
                })];
            }
            senders
                .into_iter()
                .map(|s| -> Box<dyn rtcp::packet::Packet + Send + Sync> {
                    Box::new(SenderReport {
                        ssrc: s.ssrc,
                        ntp_time: s.ntp_time,
                        rtp_time: s.rtp_time,
                        packet_count: s.packets,
                        octet_count: s.octets,
                        // The first sender report carries the blocks.
                        reports: std::mem::take(&mut reports),
                        ..Default::default()
                    })
                })
                .collect()
        }
    }
}

/// What arrived, as the session's [`Feedback`]; what we do not act on is skipped.
fn decode_rtcp(packets: &[Box<dyn rtcp::packet::Packet + Send + Sync>]) -> Vec<Feedback> {
    use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
    use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
    let mut out = Vec::new();
    let mut report = |r: &rtcp::reception_report::ReceptionReport| {
        out.push(Feedback::ReceiverReport(ReportBlock {
            ssrc: r.ssrc,
            fraction_lost: r.fraction_lost,
            total_lost: r.total_lost,
            highest_seq: r.last_sequence_number,
            jitter: r.jitter,
            last_sender_report: r.last_sender_report,
            delay: r.delay,
        }))
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
                ntp_time: sr.ntp_time,
                rtp_time: sr.rtp_time,
                packets: sr.packet_count,
                octets: sr.octet_count,
            });
        } else if any.downcast_ref::<PictureLossIndication>().is_some() {
            rest.push(Feedback::Pli);
        } else if any.downcast_ref::<FullIntraRequest>().is_some() {
            rest.push(Feedback::Fir);
        } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
            // Bounded: one NACK packet names at most 17 × its pairs; a hostile one is cut.
            let seqs: Vec<u16> = nack
                .nacks
                .iter()
                .flat_map(|p| p.packet_list())
                .take(crate::session::RETRANSMIT_BUFFER)
                .collect();
            rest.push(Feedback::Nack {
                media_ssrc: nack.media_ssrc,
                seqs,
            });
        } else if let Some(cc) = any.downcast_ref::<TransportLayerCc>() {
            rest.push(Feedback::Transport(feedback_results(cc)));
        } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
            // A float on the wire: garbage (NaN, negative, huge) must not become a target.
            if remb.bitrate.is_finite() && remb.bitrate >= 0.0 {
                rest.push(Feedback::Remb(remb.bitrate.min(1e10) as u64));
            }
        }
    }
    out.extend(rest);
    out
}

/// The public address each of `servers` (STUN, `host:port`) sees for one UDP socket of this
/// host (one per address family): the NAT test of "Test my network" ([`crate::doctor`]). A
/// Binding request is sent up to three times, 400 ms apart; a server that does not answer in
/// `wait` gives `None`.
pub async fn stun_mappings(
    servers: &[std::net::SocketAddr],
    wait: Duration,
) -> Vec<Option<std::net::SocketAddr>> {
    use webrtc::stun::message::{Getter, Message, Setter, BINDING_REQUEST, BINDING_SUCCESS};
    use webrtc::stun::xoraddr::XorMappedAddress;
    let bind = |v6: bool| async move {
        tokio::net::UdpSocket::bind(if v6 { "[::]:0" } else { "0.0.0.0:0" })
            .await
            .ok()
    };
    let (v4, v6) = (bind(false).await, bind(true).await);
    let mut ids = Vec::new();
    let mut requests = Vec::new();
    for _ in servers {
        let mut m = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(webrtc::stun::agent::TransactionId::new()),
            Box::new(BINDING_REQUEST),
            // Padding: the server's NAT test port answers only requests at least as long as
            // its answer (52 bytes over IPv6), so it reflects nothing amplified.
            Box::new(webrtc::stun::textattrs::TextAttribute::new(
                webrtc::stun::attributes::ATTR_SOFTWARE,
                format!("{:<32}", "dyad network test"),
            )),
            Box::new(webrtc::stun::fingerprint::FINGERPRINT),
        ];
        if m.build(&setters).is_err() {
            return vec![None; servers.len()];
        }
        ids.push(m.transaction_id.0);
        requests.push(m.raw);
    }
    let mut out: Vec<Option<std::net::SocketAddr>> = vec![None; servers.len()];
    let deadline = tokio::time::Instant::now() + wait;
    let (mut buf, mut buf6) = (vec![0u8; 1500], vec![0u8; 1500]);
    for attempt in 0..3u32 {
        for (i, server) in servers.iter().enumerate() {
            let socket = if server.is_ipv6() { &v6 } else { &v4 };
            if let (None, Some(socket)) = (out[i], socket) {
                let _ = socket.send_to(&requests[i], server).await;
            }
        }
        let next = (tokio::time::Instant::now() + Duration::from_millis(400)).min(deadline);
        let until = if attempt == 2 { deadline } else { next };
        loop {
            if out.iter().all(Option::is_some) {
                return out;
            }
            let recv = async {
                let never = std::future::pending::<std::io::Result<(usize, bool)>>;
                tokio::select! {
                    r = async {
                        match &v4 {
                            Some(s) => s.recv_from(&mut buf).await.map(|(n, _)| (n, false)),
                            None => never().await,
                        }
                    } => r,
                    r = async {
                        match &v6 {
                            Some(s) => s.recv_from(&mut buf6).await.map(|(n, _)| (n, true)),
                            None => never().await,
                        }
                    } => r,
                }
            };
            let Ok(Ok((n, six))) = tokio::time::timeout_at(until, recv).await else {
                break;
            };
            let got = if six { &buf6[..n] } else { &buf[..n] };
            let mut m = Message::new();
            if m.unmarshal_binary(got).is_err() || m.typ != BINDING_SUCCESS {
                continue;
            }
            let Some(i) = ids.iter().position(|id| *id == m.transaction_id.0) else {
                continue;
            };
            let mut mapped = XorMappedAddress::default();
            if mapped.get_from(&m).is_ok() {
                out[i] = Some(std::net::SocketAddr::new(mapped.ip, mapped.port));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    out
}

/// Reads a TWCC feedback packet (draft-holmer-rmcat-transport-wide-cc-extensions-01) into one
/// result per packet it covers, with arrival times in µs on the receiver's clock.
pub fn feedback_results(
    fb: &rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc,
) -> Vec<PacketResult> {
    use rtcp::transport_feedbacks::transport_layer_cc::{PacketStatusChunk, SymbolTypeTcc};
    let count = usize::from(fb.packet_status_count);
    let mut symbols = Vec::with_capacity(count);
    for chunk in &fb.packet_chunks {
        match chunk {
            PacketStatusChunk::RunLengthChunk(r) => {
                let n = usize::from(r.run_length).min(count.saturating_sub(symbols.len()));
                symbols.extend(std::iter::repeat_n(r.packet_status_symbol, n));
            }
            PacketStatusChunk::StatusVectorChunk(v) => {
                symbols.extend(v.symbol_list.iter().copied());
            }
        }
    }
    symbols.truncate(count);
    let mut arrival = i64::from(fb.reference_time) * 64_000;
    let mut deltas = fb.recv_deltas.iter();
    symbols
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let seq = fb.base_sequence_number.wrapping_add(i as u16);
            let received = matches!(
                s,
                SymbolTypeTcc::PacketReceivedSmallDelta | SymbolTypeTcc::PacketReceivedLargeDelta
            );
            let arrival_us = if received {
                deltas.next().map(|d| {
                    arrival += d.delta;
                    arrival
                })
            } else {
                None
            };
            PacketResult { seq, arrival_us }
        })
        .collect()
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

/// Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, never in a normal build):
/// what arrives from the network, from raw bytes through webrtc-rs's parsers into this module's
/// own functions, the same way the peer connection's callbacks take it.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// An RTP packet as it reaches the session: webrtc-rs's unmarshal (what `read_rtp` does
    /// under the track), then [`rtp_in`]. `None` when webrtc-rs refuses the packet.
    pub fn rtp(kind: Kind, twcc_id: Option<u8>, raw: &[u8], arrival: Instant) -> Option<RtpIn> {
        use webrtc::util::Unmarshal;
        let mut buf = Bytes::copy_from_slice(raw);
        let pkt = rtp::packet::Packet::unmarshal(&mut buf).ok()?;
        Some(rtp_in(kind, twcc_id, pkt, arrival))
    }

    /// A compound RTCP packet as the session gets it: webrtc-rs's unmarshal (what `read_rtcp`
    /// does), then [`decode_rtcp`].
    pub fn rtcp(raw: &[u8]) -> Vec<Feedback> {
        let mut buf = Bytes::copy_from_slice(raw);
        match rtcp::packet::unmarshal(&mut buf) {
            Ok(packets) => decode_rtcp(&packets),
            Err(_) => Vec::new(),
        }
    }

    /// What this module does with a remote description's text apart from handing it to the
    /// peer connection: webrtc-rs's parse (`RTCSessionDescription::offer`/`answer`), the codec
    /// check on a remote answer, the fingerprint for the verification code, and the SDP
    /// helpers that read descriptions (on our own in a call; fed anything here).
    pub fn remote_description(sdp: &str, local_sdp: &str) {
        let _ = RTCSessionDescription::offer(sdp.to_owned());
        let _ = RTCSessionDescription::answer(sdp.to_owned());
        let _ = check_negotiated(sdp);
        let _ = crate::sas::verification_code(local_sdp, sdp);
        let _ = bundle_mid(sdp);
        let tidy = tidy_sdp(sdp);
        assert!(tidy.len() <= sdp.len(), "tidy_sdp only removes");
    }

    /// A trickled remote candidate as [`RtcPeer::add_remote_candidate`] hands it to webrtc-rs:
    /// `RTCPeerConnection::add_ice_candidate` strips `candidate:` and unmarshals the rest.
    pub fn remote_candidate(candidate: &str) {
        let value = candidate.strip_prefix("candidate:").unwrap_or(candidate);
        if value.is_empty() {
            return;
        }
        use webrtc::ice::candidate::Candidate;
        if let Ok(c) = webrtc::ice::candidate::candidate_base::unmarshal_candidate(value) {
            let c: Arc<dyn Candidate + Send + Sync> = Arc::new(c);
            let _ = webrtc::ice_transport::ice_candidate::RTCIceCandidate::from(&c);
            let _ = c.marshal();
        }
    }

    /// The whole remote-offer path: a fresh peer connection applies `offer` and answers it
    /// ([`RtcPeer::answer`]: negotiation, payload types, [`tidy_sdp`], [`check_negotiated`]).
    /// Slow (a peer connection per call): the `sdp_answer` target.
    pub async fn answer_offer(offer: &str) {
        let (tx, _rx) = mpsc::unbounded_channel();
        let config = RtcConfig {
            ice_servers: Vec::new(),
            relay_only: false,
            turn_tls: None,
            turn_route: Default::default(),
        };
        let Ok(mut peer) = RtcPeer::new(&config, tx).await else {
            return;
        };
        let _ = peer.answer(offer).await;
        let _ = peer.verification_code();
        peer.close().await;
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

#[cfg(test)]
mod rtcp_tests {
    use super::*;
    use crate::rtp::SenderInfo;

    /// Through webrtc-rs's marshal and unmarshal, as on the wire (before SRTCP).
    fn wire(out: RtcpOut, twcc: &mut Recorder) -> Vec<Feedback> {
        let packets = encode_rtcp(out, twcc);
        let bytes = rtcp::packet::marshal(&packets).expect("marshal");
        let mut buf = bytes.clone();
        let back = rtcp::packet::unmarshal(&mut buf).expect("unmarshal");
        decode_rtcp(&back)
    }

    #[test]
    fn nacks_and_plis_survive_the_wire() {
        let mut r = Recorder::new(0);
        assert_eq!(
            wire(RtcpOut::Pli { media_ssrc: 9 }, &mut r),
            vec![Feedback::Pli]
        );
        let seqs = vec![65_534, 65_535, 0, 1, 40, 100];
        assert_eq!(
            wire(
                RtcpOut::Nack {
                    media_ssrc: 9,
                    seqs: seqs.clone()
                },
                &mut r
            ),
            vec![Feedback::Nack {
                media_ssrc: 9,
                seqs
            }]
        );
    }

    #[test]
    fn reports_survive_the_wire() {
        let mut r = Recorder::new(0);
        let block = ReportBlock {
            ssrc: 0xbeef,
            fraction_lost: 26,
            total_lost: 1234,
            highest_seq: 70_000,
            jitter: 90,
            last_sender_report: 0x1234_5678,
            delay: 6553,
        };
        let sender = SenderInfo {
            ssrc: 1,
            ntp_time: 0xdead_beef_0000_1111,
            rtp_time: 4242,
            packets: 77,
            octets: 8800,
        };
        let got = wire(
            RtcpOut::Reports {
                senders: vec![sender, SenderInfo { ssrc: 2, ..sender }],
                blocks: vec![block],
                reporter_ssrc: 1,
            },
            &mut r,
        );
        assert!(got.contains(&Feedback::ReceiverReport(block)), "{got:?}");
        assert!(got.contains(&Feedback::SenderReport {
            ssrc: 1,
            ntp_time: sender.ntp_time,
            rtp_time: 4242,
            packets: 77,
            octets: 8800
        }));
        assert_eq!(got.len(), 3, "one block, two sender reports: {got:?}");
        // Receiving only: a receiver report with the blocks.
        let got = wire(
            RtcpOut::Reports {
                senders: vec![],
                blocks: vec![block],
                reporter_ssrc: 5,
            },
            &mut r,
        );
        assert_eq!(got, vec![Feedback::ReceiverReport(block)]);
    }

    #[test]
    fn twcc_feedback_survives_the_wire_with_its_arrival_differences() {
        let mut r = Recorder::new(0);
        // 1, 2, (3 lost), 4 across 3 ms; arrival times are µs on our clock.
        let arrivals = vec![(1u16, 1_000_000i64), (2, 1_001_000), (4, 1_003_000)];
        let got = wire(
            RtcpOut::TransportFeedback {
                media_ssrc: 3,
                packets: arrivals,
            },
            &mut r,
        );
        let [Feedback::Transport(results)] = got.as_slice() else {
            panic!("{got:?}")
        };
        let seqs: Vec<(u16, bool)> = results
            .iter()
            .map(|p| (p.seq, p.arrival_us.is_some()))
            .collect();
        assert_eq!(seqs, vec![(1, true), (2, true), (3, false), (4, true)]);
        let t: Vec<i64> = results.iter().filter_map(|p| p.arrival_us).collect();
        assert_eq!((t[1] - t[0], t[2] - t[0]), (1000, 3000));
    }
    #[test]
    fn reads_twcc_chunks_and_deltas() {
        use webrtc::rtcp::transport_feedbacks::transport_layer_cc::*;
        let fb = TransportLayerCc {
            base_sequence_number: 65_534,
            packet_status_count: 5,
            reference_time: 10,
            packet_chunks: vec![
                PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                    type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                    packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
                    run_length: 2,
                }),
                PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                    type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                    symbol_size: SymbolSizeTypeTcc::TwoBit,
                    symbol_list: vec![
                        SymbolTypeTcc::PacketNotReceived,
                        SymbolTypeTcc::PacketReceivedLargeDelta,
                        SymbolTypeTcc::PacketReceivedSmallDelta,
                        SymbolTypeTcc::PacketNotReceived,
                    ],
                }),
            ],
            recv_deltas: vec![
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                    delta: 1000,
                },
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                    delta: 250,
                },
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedLargeDelta,
                    delta: -500,
                },
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                    delta: 750,
                },
            ],
            ..Default::default()
        };
        let r = feedback_results(&fb);
        let base = 640_000;
        assert_eq!(
            r,
            vec![
                PacketResult {
                    seq: 65_534,
                    arrival_us: Some(base + 1000)
                },
                PacketResult {
                    seq: 65_535,
                    arrival_us: Some(base + 1250)
                },
                PacketResult {
                    seq: 0,
                    arrival_us: None
                },
                PacketResult {
                    seq: 1,
                    arrival_us: Some(base + 750)
                },
                PacketResult {
                    seq: 2,
                    arrival_us: Some(base + 1500)
                },
            ]
        );
    }
}

#[cfg(test)]
mod sdp_tests {
    use super::*;

    /// A real offer from aiortc 1.16 (audio first, Opus = 96, VP8 = 97 with RTX and goog-remb).
    const AIORTC_OFFER: &str = include_str!("../tests/fixtures/aiortc-1.16-offer.sdp");

    async fn peer() -> (RtcPeer, mpsc::UnboundedReceiver<RtcEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let p = RtcPeer::new(&RtcConfig::default(), tx).await.expect("peer");
        (p, rx)
    }

    fn no_line_ends_in_whitespace(sdp: &str) {
        for line in sdp.split("\r\n") {
            assert_eq!(line, line.trim_end(), "trailing whitespace in {line:?}");
        }
    }

    #[tokio::test]
    async fn the_answer_to_aiortc_takes_its_payload_types_and_is_well_formed() {
        let (mut p, mut rx) = peer().await;
        let answer = p
            .answer(&AIORTC_OFFER.replace('\n', "\r\n"))
            .await
            .expect("answer");
        assert!(answer.contains("a=rtpmap:97 VP8/90000\r\n"), "{answer}");
        assert!(answer.contains("a=rtpmap:96 opus/48000/2\r\n"), "{answer}");
        assert!(answer.contains("a=rtcp-fb:97 nack\r\n"), "{answer}");
        assert!(answer.contains("a=rtcp-fb:97 nack pli\r\n"), "{answer}");
        assert!(
            !answer.contains("goog-remb"),
            "we never send REMB: {answer}"
        );
        no_line_ends_in_whitespace(&answer);
        // The candidates we trickle name the BUNDLE tag (the offer's first mid, audio, "0").
        let first = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match rx.recv().await {
                    Some(RtcEvent::LocalCandidate(Some(c))) => return c,
                    Some(_) => {}
                    None => panic!("events stopped"),
                }
            }
        })
        .await
        .expect("a local candidate");
        assert_eq!(first.sdp_mid.as_deref(), Some("0"));
        assert_eq!(first.sdp_mline_index, Some(0));
        p.close().await;
    }

    #[tokio::test]
    async fn our_offer_is_well_formed() {
        let (mut p, _rx) = peer().await;
        let offer = p.create_offer(false).await.expect("offer");
        assert!(offer.contains("a=rtcp-fb:96 nack\r\n"), "{offer}");
        assert!(offer.contains("a=rtcp-fb:96 transport-cc\r\n"), "{offer}");
        no_line_ends_in_whitespace(&offer);
        p.close().await;
    }

    #[test]
    fn candidates_belong_to_the_bundle_tag() {
        let sdp = "v=0\r\na=group:BUNDLE 1 0\r\nm=audio 9 X 96\r\na=mid:0\r\nm=video 9 X 97\r\na=mid:1\r\n";
        assert_eq!(bundle_mid(sdp), Some(("1".to_string(), 1)));
        let unbundled = "v=0\r\nm=audio 9 X 96\r\na=mid:a\r\nm=video 9 X 97\r\na=mid:v\r\n";
        assert_eq!(bundle_mid(unbundled), Some(("a".to_string(), 0)));
        assert_eq!(bundle_mid("v=0\r\n"), None);
    }
}
