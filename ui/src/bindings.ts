// Generated from src-tauri/src/ipc.rs by ts-rs; do not edit.
// Regenerate: DYAD_BLESS=1 cargo test -p dyad-app bindings

export type IpcError = { 
/**
 * What went wrong, for the UI to branch on.
 */
kind: ErrorKind, 
/**
 * A sentence for the user.
 */
message: string, };

export type ErrorKind = "wrong_credentials" | "username_taken" | "unreachable" | "session_expired" | "invalid_input" | "device" | "invalid_state" | "not_signed_in" | "internal";

export type SessionView = { "state": "signed_out" } | { "state": "signing_in" } | { "state": "signed_in", 
/**
 * Who.
 */
username: string, };

export type ContactView = { 
/**
 * Username.
 */
username: string, 
/**
 * "online", "in_call" or "offline" (always "offline" until the contact is accepted).
 */
presence: PresenceView, 
/**
 * Accepted, or a request one way or the other.
 */
state: ContactStateView, 
/**
 * The built-in echo test contact.
 */
echo: boolean, };

export type PresenceView = "online" | "in_call" | "offline";

export type ContactStateView = "accepted" | "requested" | "incoming";

export type CallPhase = "dialling" | "ringing" | "incoming" | "connecting" | "connected";

export type CallView = { 
/**
 * Call id.
 */
call_id: string, 
/**
 * The other party.
 */
peer: string, 
/**
 * We dialled (`true`) or were called.
 */
outgoing: boolean, 
/**
 * Where it is.
 */
phase: CallPhase, 
/**
 * Milliseconds since the UNIX epoch when media connected.
 */
connected_at_ms: number | null, 
/**
 * Our microphone is muted.
 */
mic_muted: boolean, 
/**
 * Our camera is off.
 */
camera_off: boolean, 
/**
 * The verification code to compare with the other person (`123 456`), once connected.
 */
verification: string | null, 
/**
 * An incoming call from someone who is not a contact (we let anyone call): it runs
 * through the relay only.
 */
stranger: boolean, };

export type CallEnded = { 
/**
 * Call id.
 */
call_id: string, 
/**
 * The other party.
 */
peer: string, 
/**
 * The protocol's reason (`user_hangup`, `busy`, `rejected`, `ice_failed`...).
 */
reason: string, 
/**
 * What to tell the user.
 */
message: string, 
/**
 * Seconds of connected call (0 when it never connected).
 */
duration_secs: number, 
/**
 * True when the end is a failure the user should notice (busy, unreachable, ICE failed).
 */
failed: boolean, };

export type CallSummary = { 
/**
 * The call.
 */
call_id: string, 
/**
 * Connected seconds covered by the statistics.
 */
seconds: number, 
/**
 * Mean quality score (0–100) after the first seconds.
 */
average_score: number, 
/**
 * Its band.
 */
average_band: Band, 
/**
 * The worst 5-second mean of the score.
 */
worst_score: number, 
/**
 * Its band.
 */
worst_band: Band, 
/**
 * Why it was worst, in words ("" when the worst was still good).
 */
worst_reason: string, 
/**
 * Freezes of the video we received.
 */
freezes: number, 
/**
 * Seconds frozen.
 */
freeze_seconds: number, 
/**
 * The connection path in words ("direct (host) over UDP").
 */
path: string, };

export type ExportFormat = "json" | "csv";

export type ExportResult = { 
/**
 * The file written.
 */
path: string, 
/**
 * Its size.
 */
bytes: number, 
/**
 * Seconds of call it holds.
 */
points: number, };

export type StatsPoint = { 
/**
 * What the engine measured.
 */
snapshot: StatsSnapshot, 
/**
 * Its score.
 */
score: Score, 
/**
 * Rates from its counters.
 */
rates: Rates, 
/**
 * The connection path in words ("" before one is selected).
 */
path: string, };

export type StatsSnapshot = { 
/**
 * Wall clock, ms since the Unix epoch.
 */
timestamp: number, 
/**
 * Seconds since the call connected.
 */
callSeconds: number, 
/**
 * Outbound video.
 */
outboundVideo: OutboundRtp, 
/**
 * Outbound audio.
 */
outboundAudio: OutboundRtp, 
/**
 * Inbound video.
 */
inboundVideo: InboundRtp, 
/**
 * Inbound audio.
 */
inboundAudio: InboundRtp, 
/**
 * Reports about our video.
 */
remoteInboundVideo: RemoteInboundRtp, 
/**
 * Reports about our audio.
 */
remoteInboundAudio: RemoteInboundRtp, 
/**
 * The selected candidate pair.
 */
candidatePair: PathInfo | null, 
/**
 * DTLS-SRTP state and cipher.
 */
transport: TransportInfo | null, 
/**
 * The bandwidth estimate.
 */
estimate: EstimateStats, 
/**
 * Lip sync.
 */
avSync: AvSyncStats, 
/**
 * Events this second (`keyframe_request`, `resolution_change`, `ice_restart`, ...).
 */
events: Array<string>, };

export type OutboundRtp = { 
/**
 * `video` or `audio`.
 */
kind: string, 
/**
 * Our SSRC.
 */
ssrc: number, 
/**
 * MIME type.
 */
codec: string, 
/**
 * Packets sent (retransmissions excluded).
 */
packetsSent: number, 
/**
 * Packets sent again because the other side asked (NACK).
 */
retransmittedPacketsSent: number, 
/**
 * Payload bytes sent.
 */
bytesSent: number, 
/**
 * Actual send bitrate over the last second, bit/s.
 */
bitrate: number, 
/**
 * What the controller asked of the encoder, bit/s.
 */
targetBitrate: number, 
/**
 * Frames captured per second (ours).
 */
captureFramesPerSecond: number, 
/**
 * Frames encoded per second.
 */
framesPerSecond: number, 
/**
 * Frames encoded.
 */
framesEncoded: number, 
/**
 * Keyframes encoded.
 */
keyFramesEncoded: number, 
/**
 * Frames the encoder's rate control skipped.
 */
framesDroppedByEncoder: number, 
/**
 * Current encoded size.
 */
frameWidth: number, 
/**
 * Current encoded size.
 */
frameHeight: number, 
/**
 * Seconds spent encoding.
 */
totalEncodeTime: number, 
/**
 * Mean encode time per frame over the last second, ms.
 */
encodeTimePerFrameMs: number, 
/**
 * NACKed packets received.
 */
nackCount: number, 
/**
 * PLIs received.
 */
pliCount: number, 
/**
 * FIRs received.
 */
firCount: number, 
/**
 * `bandwidth`, `cpu` or `none`.
 */
qualityLimitationReason: string, 
/**
 * Level of what we send, dBFS (audio).
 */
audioLevelDbfs: number, };

export type InboundRtp = { 
/**
 * `video` or `audio`.
 */
kind: string, 
/**
 * MIME type.
 */
codec: string, 
/**
 * Packets received.
 */
packetsReceived: number, 
/**
 * Packets whose payload type is not the one negotiated for this kind's codec (never
 * decoded; a call that gets only these ends `media_failed`).
 */
packetsUnknownPayloadType: number, 
/**
 * Packets lost (expected − received, never negative).
 */
packetsLost: number, 
/**
 * Loss over the last second, %.
 */
lossPercent: number, 
/**
 * Payload bytes received.
 */
bytesReceived: number, 
/**
 * Receive bitrate over the last second, bit/s.
 */
bitrate: number, 
/**
 * Interarrival jitter (RFC 3550), seconds.
 */
jitter: number, 
/**
 * Frames assembled.
 */
framesReceived: number, 
/**
 * Frames decoded.
 */
framesDecoded: number, 
/**
 * Frames dropped (lost packets, undecodable, waiting for a keyframe).
 */
framesDropped: number, 
/**
 * Decoded per second.
 */
framesPerSecond: number, 
/**
 * Decoded size.
 */
frameWidth: number, 
/**
 * Decoded size.
 */
frameHeight: number, 
/**
 * Seconds spent decoding.
 */
totalDecodeTime: number, 
/**
 * Mean decode time per frame over the last second, ms.
 */
decodeTimePerFrameMs: number, 
/**
 * Sum of (emitted − first packet arrival) over frames, seconds.
 */
jitterBufferDelay: number, 
/**
 * Frames counted in `jitter_buffer_delay`.
 */
jitterBufferEmittedCount: number, 
/**
 * Freezes (W3C definition: a gap > max(3 × mean frame interval, mean + 150 ms)).
 */
freezeCount: number, 
/**
 * Seconds frozen.
 */
totalFreezesDuration: number, 
/**
 * Packets we asked for again (NACK).
 */
nackCount: number, 
/**
 * PLIs we sent.
 */
pliCount: number, 
/**
 * Audio: frames concealed + recovered by FEC.
 */
concealedFrames: number, 
/**
 * Audio: frames recovered by FEC.
 */
fecRecoveredFrames: number, 
/**
 * Audio: the jitter buffer's target delay now, seconds (W3C `jitterBufferTargetDelay`,
 * here the current value rather than a sum).
 */
jitterBufferTargetDelay: number, 
/**
 * Audio: samples played out (decoded, rebuilt or concealed; W3C `totalSamplesReceived`).
 */
totalSamplesReceived: number, 
/**
 * Audio: samples concealed (lost or late packets, underruns, decelerations).
 */
concealedSamples: number, 
/**
 * Audio: concealments that started after a decoded frame.
 */
concealmentEvents: number, 
/**
 * Audio: samples played to let the jitter buffer grow.
 */
insertedSamplesForDeceleration: number, 
/**
 * Audio: samples dropped to let the jitter buffer shrink.
 */
removedSamplesForAcceleration: number, 
/**
 * Audio level, dBFS.
 */
audioLevelDbfs: number, 
/**
 * Test-pattern frame number of the last decoded frame.
 */
lastMarkerFrame: number | null, 
/**
 * Capture → decoded, median over the last second, ms (test pattern only; one clock).
 */
glassToGlassMs: number | null, };

export type RemoteInboundRtp = { 
/**
 * `video` or `audio`.
 */
kind: string, 
/**
 * Round-trip time from the last report (LSR/DLSR), seconds.
 */
roundTripTime: number | null, 
/**
 * Loss fraction from the last report, 0..1.
 */
fractionLost: number, 
/**
 * Cumulative lost, as reported.
 */
packetsLost: number, 
/**
 * Jitter they see, seconds.
 */
jitter: number, };

export type EstimateStats = { 
/**
 * Target, bit/s (W3C `availableOutgoingBitrate`).
 */
availableOutgoingBitrate: number, 
/**
 * Delay-based bound.
 */
delayBased: number, 
/**
 * Loss-based bound.
 */
lossBased: number, 
/**
 * What the far side acknowledged receiving.
 */
acknowledged: number | null, 
/**
 * `normal`, `overusing` or `underusing`.
 */
usage: string, };

export type AvSyncStats = { 
/**
 * Video delay − audio delay over the last second, ms: positive, the picture comes after
 * its sound. `None` without both streams and their sender reports.
 */
offsetMs: number | null, 
/**
 * How much longer audio is held to meet the video, ms.
 */
audioDelayMs: number, 
/**
 * How much longer video is held to meet the audio, ms.
 */
videoDelayMs: number, };

export type PathInfo = { 
/**
 * `host`, `srflx`, `prflx` or `relay`.
 */
localCandidateType: string, 
/**
 * Remote candidate type.
 */
remoteCandidateType: string, 
/**
 * `ip:port`.
 */
localAddress: string, 
/**
 * `ip:port`.
 */
remoteAddress: string, 
/**
 * `udp` or `tcp`.
 */
protocol: string, 
/**
 * Current RTT from STUN consent checks, seconds.
 */
currentRoundTripTime: number, };

export type TransportInfo = { 
/**
 * `new`, `connecting`, `connected`, `closed` or `failed`.
 */
dtlsState: string, 
/**
 * DTLS version (webrtc-rs speaks DTLS 1.2 only).
 */
tlsVersion: string, 
/**
 * The SRTP profile once DTLS is connected, else empty.
 */
srtpCipher: string, };

export type Score = { 
/**
 * 0–100: the worst of the four terms.
 */
score: number, 
/**
 * Its band.
 */
band: Band, 
/**
 * Why (the dominant impairment of the worst term); `none` when good.
 */
reason: Reason, 
/**
 * The reason in words ("" when good).
 */
reasonText: string, 
/**
 * E-model rating R of what we hear.
 */
audioIn: number, 
/**
 * E-model rating R of what the other side hears.
 */
audioOut: number, 
/**
 * Video term of what we see (100 when not judged).
 */
videoIn: number, 
/**
 * Video term of what the other side sees (100 when not judged).
 */
videoOut: number, 
/**
 * Mean opinion score (1–4.5) of the worse audio direction.
 */
mos: number, 
/**
 * One-way mouth-to-ear delay used, ms.
 */
oneWayDelayMs: number, };

export type Band = "good" | "fair" | "poor";

export type Reason = "none" | "inbound_loss" | "outbound_loss" | "delay" | "jitter" | "upload_limited" | "cpu" | "low_send_rate" | "low_receive_fps" | "low_receive_resolution" | "freezes" | "echo";

export type Rates = { 
/**
 * Video packets we sent per second.
 */
videoPacketsSent: number, 
/**
 * Video packets we received per second.
 */
videoPacketsReceived: number, 
/**
 * NACKs the other side sent us per second.
 */
nacksReceived: number, 
/**
 * NACKs we sent per second.
 */
nacksSent: number, 
/**
 * PLIs the other side sent us per second.
 */
plisReceived: number, 
/**
 * PLIs we sent per second.
 */
plisSent: number, 
/**
 * Of the audio frames played this second, the share concealed or rebuilt by FEC, %.
 */
concealmentPercent: number, 
/**
 * Video packets the other side reports lost per second (RTCP's 24-bit cumulative count).
 */
remoteVideoLost: number, };

export type AppStateView = { 
/**
 * The session.
 */
session: SessionView, 
/**
 * The signalling server in use (`http://127.0.0.1:port` for the embedded one).
 */
server_url: string | null, 
/**
 * True when the app runs its own signalling server.
 */
embedded: boolean, 
/**
 * Whether the signalling connection is up.
 */
online: boolean, 
/**
 * Contacts.
 */
contacts: Array<ContactView>, 
/**
 * People who are not contacts may call us (their calls are relayed); off by default.
 */
anyone_may_call: boolean, 
/**
 * The call in progress.
 */
call: CallView | null, 
/**
 * Where the page fetches video frames.
 */
frames: FrameEndpoint, 
/**
 * Chosen devices.
 */
devices: DeviceChoice, 
/**
 * What the microphone's audio goes through.
 */
audio_processing: AudioProcessingChoice, };

export type FrameEndpoint = { 
/**
 * `ws://127.0.0.1:port/`.
 */
url: string, 
/**
 * Per-launch secret, sent as `?secret=`.
 */
secret: string, };

export type UiEvent = { "type": "session", 
/**
 * Now.
 */
session: SessionView, 
/**
 * Server in use.
 */
server_url: string | null, 
/**
 * Embedded server.
 */
embedded: boolean, } | { "type": "connection", 
/**
 * Up.
 */
online: boolean, } | { "type": "contacts", 
/**
 * Contacts.
 */
contacts: Array<ContactView>, } | { "type": "privacy", 
/**
 * See [`AppStateView::anyone_may_call`].
 */
anyone_may_call: boolean, } | { "type": "call", 
/**
 * The call.
 */
call: CallView, } | { "type": "ended", 
/**
 * How.
 */
ended: CallEnded, } | { "type": "stats", 
/**
 * This second.
 */
point: StatsPoint, } | { "type": "mic_level", 
/**
 * Level.
 */
dbfs: number, } | { "type": "error", 
/**
 * The error.
 */
error: IpcError, };

export type DeviceOption = { 
/**
 * Stable id (`camera:0`, `pattern`, `mic:default`, `speech`...).
 */
id: string, 
/**
 * What the user reads.
 */
label: string, };

export type DeviceList = { 
/**
 * Cameras, then synthetic sources.
 */
cameras: Array<DeviceOption>, 
/**
 * Microphones, then synthetic sources.
 */
microphones: Array<DeviceOption>, 
/**
 * Speakers, then "no sound".
 */
speakers: Array<DeviceOption>, 
/**
 * Why a kind has no real device (e.g. "No camera found"), for the UI to say so.
 */
notes: Array<string>, };

export type DeviceChoice = { 
/**
 * Camera id.
 */
camera: string, 
/**
 * Microphone id.
 */
microphone: string, 
/**
 * Speaker id.
 */
speaker: string, };

export type AudioProcessingChoice = { 
/**
 * Remove the other person's voice coming back from our loudspeaker.
 */
echo_cancellation: boolean, 
/**
 * Remove steady background noise (fans, hum, hiss).
 */
noise_suppression: boolean, 
/**
 * Bring a quiet voice up and hold a loud one below clipping.
 */
auto_gain: boolean, 
/**
 * Remove rumble below ≈ 80 Hz.
 */
high_pass: boolean, };

export type HistoryRow = { 
/**
 * Call id.
 */
call_id: string, 
/**
 * The other party.
 */
peer: string, 
/**
 * We dialled.
 */
outgoing: boolean, 
/**
 * What happened.
 */
outcome: Outcome, 
/**
 * When it started, ms since the UNIX epoch.
 */
started_at_ms: number, 
/**
 * Connected seconds (0 when never answered).
 */
duration_secs: number, 
/**
 * What this app measured of the call (absent for calls it did not take part in).
 */
summary: CallSummary | null, };

export type GuestLink = { 
/**
 * `https://server/join/<token>`.
 */
url: string, 
/**
 * The link's token (what revokes it).
 */
token: string, 
/**
 * When it stops working, UNIX seconds.
 */
expires_at: number, 
/**
 * The server listens on loopback (the app's built-in one): the link opens on this
 * computer only.
 */
local_only: boolean, };

export type NetworkReport = { 
/**
 * The server tested.
 */
server: string, 
/**
 * One finding per line (server, IPv4, IPv6, public address and NAT, each relay), the
 * conclusion last.
 */
lines: Array<string>, 
/**
 * Whether calls can be set up from this network through this server at all.
 */
calls_possible: boolean, 
/**
 * How long the test took, seconds.
 */
took_secs: number, };

export type Outcome = "answered" | "missed" | "declined" | "busy" | "no_answer" | "failed" | "in_progress";

export type FrameStats = { 
/**
 * Remote video.
 */
remote: StreamStats, 
/**
 * Self-view.
 */
local: StreamStats, };

export type StreamStats = { 
/**
 * Frames sent to the page.
 */
sent: number, 
/**
 * Frames the page reported drawn.
 */
drawn: number, 
/**
 * Frames skipped because the page was behind.
 */
skipped: number, 
/**
 * Capture → drawn on the page, median of the last 300, ms (test-pattern frames only).
 */
capture_to_drawn_p50_ms: number | null, 
/**
 * Same, 95th percentile.
 */
capture_to_drawn_p95_ms: number | null, 
/**
 * Sent by Rust → drawn on the page, median, ms.
 */
delivery_p50_ms: number | null, };
