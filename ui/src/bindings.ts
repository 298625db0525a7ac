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
 * "online", "in_call" or "offline".
 */
presence: PresenceView, 
/**
 * The built-in echo test contact.
 */
echo: boolean, };

export type PresenceView = "online" | "in_call" | "offline";

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
camera_off: boolean, };

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

export type QualityView = { 
/**
 * Overall: "good", "fair" or "poor".
 */
level: QualityLevel, 
/**
 * Why, in words (empty when good).
 */
reason: string, 
/**
 * Round-trip time, ms.
 */
rtt_ms: number | null, 
/**
 * Received video loss over the last second, percent.
 */
loss_percent: number, 
/**
 * Received frames per second.
 */
recv_fps: number, 
/**
 * Sent video bitrate, kbit/s.
 */
send_kbps: number, 
/**
 * Received video size.
 */
recv_width: number, 
/**
 * Received video size.
 */
recv_height: number, };

export type QualityLevel = "good" | "fair" | "poor";

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
devices: DeviceChoice, };

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
contacts: Array<ContactView>, } | { "type": "call", 
/**
 * The call.
 */
call: CallView, } | { "type": "ended", 
/**
 * How.
 */
ended: CallEnded, } | { "type": "quality", 
/**
 * Now.
 */
quality: QualityView, } | { "type": "mic_level", 
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
duration_secs: number, };

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
