//! The types that cross IPC. TypeScript declarations for them are generated with ts-rs into
//! `ui/src/bindings.ts`; `tests` in this module fail when that file is out of date
//! (`DYAD_BLESS=1 cargo test -p dyad-app bindings` rewrites it).

use dyad_call::quality::{Band, Rates, Reason, Score, StatsPoint};
use dyad_call::rtc::{PathInfo, TransportInfo};
use dyad_call::stats::{
    AvSyncStats, EstimateStats, InboundRtp, OutboundRtp, RemoteInboundRtp, StatsSnapshot,
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// An error as the UI sees it: a kind it can branch on and a sentence it can show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct IpcError {
    /// What went wrong, for the UI to branch on.
    pub kind: ErrorKind,
    /// A sentence for the user.
    pub message: String,
}

/// The error kinds the UI branches on (and only those).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Wrong username or password.
    WrongCredentials,
    /// Registration with a name someone has.
    UsernameTaken,
    /// The signalling server cannot be reached.
    Unreachable,
    /// The stored sign-in is no longer valid; sign in again.
    SessionExpired,
    /// An argument failed validation (too long, bad URL, unknown device).
    InvalidInput,
    /// A camera, microphone or speaker failed or is missing.
    Device,
    /// Not possible in the current state (no call to accept, already in a call...).
    InvalidState,
    /// Not signed in.
    NotSignedIn,
    /// Anything else.
    Internal,
}

/// Whether we are signed in, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SessionView {
    /// Nobody is signed in.
    SignedOut,
    /// Signing in (first run: creating the local account).
    SigningIn,
    /// Signed in as `username`.
    SignedIn {
        /// Who.
        username: String,
    },
}

/// A contact with presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ContactView {
    /// Username.
    pub username: String,
    /// "online", "in_call" or "offline" (always "offline" until the contact is accepted).
    pub presence: PresenceView,
    /// Accepted, or a request one way or the other.
    pub state: ContactStateView,
    /// The built-in echo test contact.
    pub echo: bool,
}

/// Where a contact stands: both must add each other before presence is shared or calls work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ContactStateView {
    /// Both added each other.
    Accepted,
    /// We asked; they have not accepted yet.
    Requested,
    /// They asked us: accept or decline.
    Incoming,
}

/// A contact's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum PresenceView {
    /// Reachable.
    Online,
    /// In a call.
    InCall,
    /// Not connected.
    Offline,
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    /// Our invite is on its way.
    Dialling,
    /// The other side's device rings.
    Ringing,
    /// Someone calls us.
    Incoming,
    /// Answered, media connecting.
    Connecting,
    /// Media flows.
    Connected,
}

/// The call in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct CallView {
    /// Call id.
    pub call_id: String,
    /// The other party.
    pub peer: String,
    /// We dialled (`true`) or were called.
    pub outgoing: bool,
    /// Where it is.
    pub phase: CallPhase,
    /// Milliseconds since the UNIX epoch when media connected.
    #[ts(type = "number | null")]
    pub connected_at_ms: Option<u64>,
    /// Our microphone is muted.
    pub mic_muted: bool,
    /// Our camera is off.
    pub camera_off: bool,
    /// The verification code to compare with the other person (`123 456`), once connected.
    pub verification: Option<String>,
    /// An incoming call from someone who is not a contact (we let anyone call): it runs
    /// through the relay only.
    pub stranger: bool,
}

/// How a call ended, for the UI.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct CallEnded {
    /// Call id.
    pub call_id: String,
    /// The other party.
    pub peer: String,
    /// The protocol's reason (`user_hangup`, `busy`, `rejected`, `ice_failed`...).
    pub reason: String,
    /// What to tell the user.
    pub message: String,
    /// Seconds of connected call (0 when it never connected).
    pub duration_secs: f64,
    /// True when the end is a failure the user should notice (busy, unreachable, ICE failed).
    pub failed: bool,
}

/// What the history keeps of a call's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct CallSummary {
    /// The call.
    pub call_id: String,
    /// Connected seconds covered by the statistics.
    pub seconds: f64,
    /// Mean quality score (0–100) after the first seconds.
    pub average_score: f64,
    /// Its band.
    pub average_band: Band,
    /// The worst 5-second mean of the score.
    pub worst_score: f64,
    /// Its band.
    pub worst_band: Band,
    /// Why it was worst, in words ("" when the worst was still good).
    pub worst_reason: String,
    /// Freezes of the video we received.
    #[ts(type = "number")]
    pub freezes: u64,
    /// Seconds frozen.
    pub freeze_seconds: f64,
    /// The connection path in words ("direct (host) over UDP").
    pub path: String,
}

/// What to export the call's statistics as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// A webrtc-internals style dump.
    Json,
    /// One row per second.
    Csv,
}

/// Where an export went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ExportResult {
    /// The file written.
    pub path: String,
    /// Its size.
    #[ts(type = "number")]
    pub bytes: u64,
    /// Seconds of call it holds.
    pub points: u32,
}

/// Everything the UI needs after a (re)load; events then keep it current.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct AppStateView {
    /// The session.
    pub session: SessionView,
    /// The signalling server in use (`http://127.0.0.1:port` for the embedded one).
    pub server_url: Option<String>,
    /// True when the app runs its own signalling server.
    pub embedded: bool,
    /// Whether the signalling connection is up.
    pub online: bool,
    /// Contacts.
    pub contacts: Vec<ContactView>,
    /// People who are not contacts may call us (their calls are relayed); off by default.
    pub anyone_may_call: bool,
    /// The call in progress.
    pub call: Option<CallView>,
    /// Where the page fetches video frames.
    pub frames: FrameEndpoint,
    /// Chosen devices.
    pub devices: DeviceChoice,
    /// What the microphone's audio goes through.
    pub audio_processing: AudioProcessingChoice,
}

/// The local WebSocket that carries decoded frames to the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct FrameEndpoint {
    /// `ws://127.0.0.1:port/`.
    pub url: String,
    /// Per-launch secret, sent as `?secret=`.
    pub secret: String,
}

/// What the UI is told as things happen.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UiEvent {
    /// Signed in / out.
    Session {
        /// Now.
        session: SessionView,
        /// Server in use.
        server_url: Option<String>,
        /// Embedded server.
        embedded: bool,
    },
    /// Signalling connection up or down.
    Connection {
        /// Up.
        online: bool,
    },
    /// The whole contact list.
    Contacts {
        /// Contacts.
        contacts: Vec<ContactView>,
    },
    /// Whether people who are not contacts may call us (signed in, or changed on any device).
    Privacy {
        /// See [`AppStateView::anyone_may_call`].
        anyone_may_call: bool,
    },
    /// The call changed.
    Call {
        /// The call.
        call: CallView,
    },
    /// The call ended.
    Ended {
        /// How.
        ended: CallEnded,
    },
    /// One second of call statistics with its quality score (the compact indicator and the
    /// statistics screen).
    Stats {
        /// This second.
        point: Box<StatsPoint>,
    },
    /// The microphone level in the pre-join preview, dBFS (10 per second).
    MicLevel {
        /// Level.
        dbfs: f64,
    },
    /// Something failed that the user should hear about.
    Error {
        /// The error.
        error: IpcError,
    },
}

/// A device or synthetic source the user can pick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeviceOption {
    /// Stable id (`camera:0`, `pattern`, `mic:default`, `speech`...).
    pub id: String,
    /// What the user reads.
    pub label: String,
}

/// Pickers' contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeviceList {
    /// Cameras, then synthetic sources.
    pub cameras: Vec<DeviceOption>,
    /// Microphones, then synthetic sources.
    pub microphones: Vec<DeviceOption>,
    /// Speakers, then "no sound".
    pub speakers: Vec<DeviceOption>,
    /// Why a kind has no real device (e.g. "No camera found"), for the UI to say so.
    pub notes: Vec<String>,
}

/// The devices in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct DeviceChoice {
    /// Camera id.
    pub camera: String,
    /// Microphone id.
    pub microphone: String,
    /// Speaker id.
    pub speaker: String,
}

/// Which parts of the microphone's processing run (Settings → Sound). All on by default;
/// a musician, or someone on a headset who wants the untouched signal, turns them off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct AudioProcessingChoice {
    /// Remove the other person's voice coming back from our loudspeaker.
    pub echo_cancellation: bool,
    /// Remove steady background noise (fans, hum, hiss).
    pub noise_suppression: bool,
    /// Bring a quiet voice up and hold a loud one below clipping.
    pub auto_gain: bool,
    /// Remove rumble below ≈ 80 Hz.
    pub high_pass: bool,
}

impl Default for AudioProcessingChoice {
    fn default() -> Self {
        Self::from(dyad_media::ProcessingConfig::ALL)
    }
}

impl From<dyad_media::ProcessingConfig> for AudioProcessingChoice {
    fn from(c: dyad_media::ProcessingConfig) -> Self {
        Self {
            echo_cancellation: c.echo_cancellation,
            noise_suppression: c.noise_suppression,
            auto_gain: c.auto_gain,
            high_pass: c.high_pass,
        }
    }
}

impl From<AudioProcessingChoice> for dyad_media::ProcessingConfig {
    fn from(c: AudioProcessingChoice) -> Self {
        Self {
            echo_cancellation: c.echo_cancellation,
            noise_suppression: c.noise_suppression,
            auto_gain: c.auto_gain,
            high_pass: c.high_pass,
        }
    }
}

/// A guest link the user made ("Invite by link"): whoever opens it in a browser can call them.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct GuestLink {
    /// `https://server/join/<token>`.
    pub url: String,
    /// The link's token (what revokes it).
    pub token: String,
    /// When it stops working, UNIX seconds.
    pub expires_at: u64,
    /// The server listens on loopback (the app's built-in one): the link opens on this
    /// computer only.
    pub local_only: bool,
}

/// "Test my network" (Settings): what the network lets through to the server in use, in
/// plain words (the same checks and words as `dyad doctor`).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct NetworkReport {
    /// The server tested.
    pub server: String,
    /// One finding per line (server, IPv4, IPv6, public address and NAT, each relay), the
    /// conclusion last.
    pub lines: Vec<String>,
    /// Whether calls can be set up from this network through this server at all.
    pub calls_possible: bool,
    /// How long the test took, seconds.
    pub took_secs: f64,
}

/// One call in the history list.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct HistoryRow {
    /// Call id.
    pub call_id: String,
    /// The other party.
    pub peer: String,
    /// We dialled.
    pub outgoing: bool,
    /// What happened.
    pub outcome: Outcome,
    /// When it started, ms since the UNIX epoch.
    #[ts(type = "number")]
    pub started_at_ms: u64,
    /// Connected seconds (0 when never answered).
    pub duration_secs: f64,
    /// What this app measured of the call (absent for calls it did not take part in).
    pub summary: Option<CallSummary>,
}

/// A call's outcome as the history shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Talked.
    Answered,
    /// Rang us and nobody answered (or the caller gave up).
    Missed,
    /// Declined (by us or them).
    Declined,
    /// They were in another call.
    Busy,
    /// Nobody answered our call, or we cancelled it.
    NoAnswer,
    /// Could not connect or dropped (offline, ICE failed, vanished).
    Failed,
    /// Still going.
    InProgress,
}

/// Frame delivery to the page, per stream.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct FrameStats {
    /// Remote video.
    pub remote: StreamStats,
    /// Self-view.
    pub local: StreamStats,
}

/// One stream's delivery figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, TS)]
pub struct StreamStats {
    /// Frames sent to the page.
    #[ts(type = "number")]
    pub sent: u64,
    /// Frames the page reported drawn.
    #[ts(type = "number")]
    pub drawn: u64,
    /// Frames skipped because the page was behind.
    #[ts(type = "number")]
    pub skipped: u64,
    /// Capture → drawn on the page, median of the last 300, ms (test-pattern frames only).
    pub capture_to_drawn_p50_ms: Option<f64>,
    /// Same, 95th percentile.
    pub capture_to_drawn_p95_ms: Option<f64>,
    /// Sent by Rust → drawn on the page, median, ms.
    pub delivery_p50_ms: Option<f64>,
}

/// Every declaration, in one file, in a stable order.
pub fn typescript() -> String {
    // Counters are u64 in Rust; as JS numbers they are exact up to 2^53.
    let cfg = ts_rs::Config::default().with_large_int("number");
    let decls = [
        IpcError::decl(&cfg),
        ErrorKind::decl(&cfg),
        SessionView::decl(&cfg),
        ContactView::decl(&cfg),
        PresenceView::decl(&cfg),
        ContactStateView::decl(&cfg),
        CallPhase::decl(&cfg),
        CallView::decl(&cfg),
        CallEnded::decl(&cfg),
        CallSummary::decl(&cfg),
        ExportFormat::decl(&cfg),
        ExportResult::decl(&cfg),
        StatsPoint::decl(&cfg),
        StatsSnapshot::decl(&cfg),
        OutboundRtp::decl(&cfg),
        InboundRtp::decl(&cfg),
        RemoteInboundRtp::decl(&cfg),
        EstimateStats::decl(&cfg),
        AvSyncStats::decl(&cfg),
        PathInfo::decl(&cfg),
        TransportInfo::decl(&cfg),
        Score::decl(&cfg),
        Band::decl(&cfg),
        Reason::decl(&cfg),
        Rates::decl(&cfg),
        AppStateView::decl(&cfg),
        FrameEndpoint::decl(&cfg),
        UiEvent::decl(&cfg),
        DeviceOption::decl(&cfg),
        DeviceList::decl(&cfg),
        DeviceChoice::decl(&cfg),
        AudioProcessingChoice::decl(&cfg),
        HistoryRow::decl(&cfg),
        GuestLink::decl(&cfg),
        NetworkReport::decl(&cfg),
        Outcome::decl(&cfg),
        FrameStats::decl(&cfg),
        StreamStats::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/src/ipc.rs by ts-rs; do not edit.\n\
         // Regenerate: DYAD_BLESS=1 cargo test -p dyad-app bindings\n\n",
    );
    for d in decls {
        out.push_str("export ");
        out.push_str(&d);
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_are_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings.ts");
        let want = typescript();
        if std::env::var_os("DYAD_BLESS").is_some() {
            std::fs::write(&path, &want).expect("ui/src is writable");
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "ui/src/bindings.ts is out of date: run DYAD_BLESS=1 cargo test -p dyad-app bindings"
        );
    }

    #[test]
    fn errors_and_events_serialize_as_the_ui_expects() {
        let e = serde_json::to_value(IpcError {
            kind: ErrorKind::WrongCredentials,
            message: "no".into(),
        })
        .expect("plain struct");
        assert_eq!(e["kind"], "wrong_credentials");
        let ev = serde_json::to_value(UiEvent::Connection { online: false }).expect("plain enum");
        assert_eq!(ev["type"], "connection");
        assert_eq!(ev["online"], false);
    }
}
