//! What the outside world sees of the call engine: how a client is configured
//! ([`ClientConfig`]), the commands it takes ([`ClientHandle`]) and the one stream of
//! [`CallEvent`]s it gives. The task behind them is [`crate::engine`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dyad_media::{AudioFrame, AudioSink, ProcessingConfig, VideoFrame};
use dyad_proto::{Contact, EndReason, Presence};
use tokio::sync::{mpsc, oneshot, watch};

use crate::bwe::BweConfig;
use crate::error::{CallError, Result};
use crate::media::{AudioInput, DecodedVideo, MediaConfig, SharedSink, VideoInput};
use crate::quality::StatsPoint;
use crate::signal::ServerUrl;
use crate::stats::StatsHistory;

/// Messages queued while the signalling connection is down.
pub const MAX_QUEUED_MESSAGES: usize = 256;
/// Reconnect backoff: first and longest wait.
pub const BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(8));
/// With packets of a kind arriving but not one frame of it decoding this long after connecting,
/// the call ends `media_failed`.
pub const MEDIA_FAILED_AFTER: Duration = crate::session::MEDIA_FAILED_AFTER;

/// How a client signs in and what it sends.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The signalling server.
    pub server: ServerUrl,
    /// Account.
    pub username: String,
    /// Password.
    pub password: String,
    /// Create the account when it does not exist.
    pub register: bool,
    /// This device's id (stable per installation).
    pub device: String,
    /// What to send.
    pub media: MediaConfig,
    /// Use TURN relays only.
    pub relay_only: bool,
    /// Accept every incoming call at once, and every contact request (the echo bot, `dyad
    /// answer`): an answering machine is everybody's contact.
    pub auto_accept: bool,
    /// How long our invites ring, ms.
    pub invite_lifetime_ms: u64,
    /// Where the bandwidth estimate starts, bit/s (it then moves by the estimator's rules).
    pub start_bps: u64,
    /// Fault injection for tests of the receive side: corrupt every Nth encoded video frame
    /// before it is sent (`Some(1)`: every frame). Never set in normal use.
    pub corrupt_every: Option<u32>,
    /// Hold back whichever of the other side's audio and video is ahead (on by default; off,
    /// the offset is still measured and shown).
    pub lip_sync: bool,
    /// A token from an earlier sign-in: used instead of the password when set (the desktop
    /// app keeps it in the OS keyring and does not store the password).
    pub token: Option<String>,
}

impl ClientConfig {
    /// Defaults for `username` on `server`: test pattern, speech-like audio, 60 s invites.
    pub fn new(server: ServerUrl, username: &str, password: &str) -> Self {
        Self {
            server,
            username: username.into(),
            password: password.into(),
            register: true,
            device: "dyad-cli".into(),
            media: MediaConfig::default(),
            relay_only: false,
            auto_accept: false,
            invite_lifetime_ms: dyad_proto::limits::DEFAULT_INVITE_LIFETIME_MS,
            start_bps: BweConfig::default().start_bps,
            corrupt_every: None,
            lip_sync: true,
            token: None,
        }
    }

    /// The echo bot: answers every call and sends the caller's media back.
    pub fn echo(mut self) -> Self {
        self.auto_accept = true;
        self.media.video = VideoInput::Echo;
        self.media.audio = AudioInput::Echo;
        self
    }
}

/// What the client tells its owner.
#[derive(Debug, Clone)]
pub enum CallEvent {
    /// Signed in and connected.
    SignedIn {
        /// Who.
        username: String,
        /// Device id.
        device: String,
    },
    /// The signalling connection dropped; retrying (a running call continues).
    SignallingLost,
    /// The signalling connection is back.
    SignallingRestored,
    /// The server no longer accepts our token and we cannot sign in again: the client has no
    /// password (it was started with a token only, as the desktop app does) or the password was
    /// refused. Final: the client stops reconnecting until it is started anew.
    SessionExpired {
        /// `token_expired` or `unauthorized` (or the login's error code).
        code: String,
        /// For people.
        message: String,
    },
    /// The contact list.
    Contacts(Vec<Contact>),
    /// Whether people who are not contacts may call us (after signing in, and when changed on
    /// any device).
    Privacy {
        /// See [`ClientHandle::set_privacy`].
        anyone_may_call: bool,
    },
    /// A contact's presence changed.
    Presence {
        /// Who.
        username: String,
        /// Now.
        presence: Presence,
    },
    /// We are calling `peer`.
    Dialling {
        /// Call id.
        call_id: String,
        /// Callee.
        peer: String,
    },
    /// The callee's device rings.
    RemoteRinging {
        /// Call id.
        call_id: String,
    },
    /// Someone calls us.
    Incoming {
        /// Call id.
        call_id: String,
        /// Caller.
        from: String,
        /// The caller is not a contact (we let anyone call): the call uses the relay only, so
        /// neither side learns the other's address.
        stranger: bool,
    },
    /// Answered; connecting.
    Connecting {
        /// Call id.
        call_id: String,
    },
    /// Media flows.
    Connected {
        /// Call id.
        call_id: String,
        /// The verification code ([`crate::sas`]): the same on both sides unless someone swapped
        /// the DTLS fingerprints on the way.
        verification: Option<String>,
    },
    /// The first remote video frame decoded.
    FirstRemoteFrame {
        /// Call id.
        call_id: String,
        /// Since the answer was applied (caller) or created (callee).
        after_answer: Duration,
    },
    /// Once a second during a call: the snapshot, its score and rates.
    Stats(Box<StatsPoint>),
    /// The call is over.
    Ended {
        /// Call id.
        call_id: String,
        /// Why.
        reason: EndReason,
        /// Its statistics.
        stats: Arc<StatsHistory>,
    },
    /// Something failed that the user should hear about.
    Error {
        /// Stable code.
        code: String,
        /// Message.
        message: String,
    },
}

/// Commands to the client task.
#[derive(Debug)]
pub(crate) enum Command {
    Dial(String),
    Accept,
    Reject,
    Hangup,
    MuteAudio(bool),
    MuteVideo(bool),
    SwitchVideo(VideoInput),
    SwitchAudio(AudioInput, Option<String>),
    AudioProcessing(ProcessingConfig),
    Contacts(ContactCmd),
    Stats(oneshot::Sender<Option<StatsHistory>>),
    Shutdown(oneshot::Sender<()>),
}

#[derive(Debug)]
pub(crate) enum ContactCmd {
    Add(String),
    Remove(String),
    Privacy(bool),
}

/// Commands for a running client.
#[derive(Clone)]
pub struct ClientHandle {
    pub(crate) cmd: mpsc::UnboundedSender<Command>,
    pub(crate) remote_video: watch::Receiver<Option<Arc<DecodedVideo>>>,
    pub(crate) self_view: watch::Receiver<Option<Arc<VideoFrame>>>,
    pub(crate) audio_out: SharedSink,
}

impl std::fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandle").finish_non_exhaustive()
    }
}

impl ClientHandle {
    fn send(&self, c: Command) -> Result<()> {
        self.cmd.send(c).map_err(|_| CallError::Closed)
    }
    /// Calls `user`.
    pub fn dial(&self, user: &str) -> Result<()> {
        self.send(Command::Dial(user.into()))
    }
    /// Accepts the ringing call.
    pub fn accept(&self) -> Result<()> {
        self.send(Command::Accept)
    }
    /// Declines the ringing call.
    pub fn reject(&self) -> Result<()> {
        self.send(Command::Reject)
    }
    /// Hangs up (or cancels a call still ringing).
    pub fn hangup(&self) -> Result<()> {
        self.send(Command::Hangup)
    }
    /// Microphone off/on.
    pub fn mute_audio(&self, muted: bool) -> Result<()> {
        self.send(Command::MuteAudio(muted))
    }
    /// Camera off/on.
    pub fn mute_video(&self, muted: bool) -> Result<()> {
        self.send(Command::MuteVideo(muted))
    }
    /// Switches the video source without re-dialling.
    pub fn switch_video(&self, input: VideoInput) -> Result<()> {
        self.send(Command::SwitchVideo(input))
    }
    /// Switches the audio source without re-dialling (a microphone: the system default).
    pub fn switch_audio(&self, input: AudioInput) -> Result<()> {
        self.send(Command::SwitchAudio(input, None))
    }
    /// Switches to the microphone `id` (`dyad_media::list_audio_devices`; `None`: the system
    /// default) without re-dialling; later calls keep it.
    pub fn switch_microphone(&self, id: Option<String>) -> Result<()> {
        self.send(Command::SwitchAudio(AudioInput::Microphone, id))
    }
    /// Switches parts of the microphone's processing (echo cancellation, noise suppression,
    /// gain control, high-pass filter) on or off, mid-call too; later calls keep the choice.
    pub fn set_audio_processing(&self, config: ProcessingConfig) -> Result<()> {
        self.send(Command::AudioProcessing(config))
    }
    /// Asks `user` to be a contact, or accepts their request.
    pub fn add_contact(&self, user: &str) -> Result<()> {
        self.send(Command::Contacts(ContactCmd::Add(user.into())))
    }
    /// Whether people who are not contacts may call us (their calls are relayed).
    pub fn set_privacy(&self, anyone_may_call: bool) -> Result<()> {
        self.send(Command::Contacts(ContactCmd::Privacy(anyone_may_call)))
    }
    /// Removes a contact, or withdraws or declines a request.
    pub fn remove_contact(&self, user: &str) -> Result<()> {
        self.send(Command::Contacts(ContactCmd::Remove(user.into())))
    }
    /// The latest decoded remote frame (latest-frame semantics: nothing queues).
    pub fn remote_video(&self) -> watch::Receiver<Option<Arc<DecodedVideo>>> {
        self.remote_video.clone()
    }
    /// The latest captured frame during a call (the self-view; `None` while the camera is off
    /// or no call runs).
    pub fn self_view(&self) -> watch::Receiver<Option<Arc<VideoFrame>>> {
        self.self_view.clone()
    }
    /// Where received audio is played (default: nowhere).
    pub fn set_audio_sink(&self, sink: Box<dyn AudioSink>) {
        if let Ok(mut s) = self.audio_out.lock() {
            *s = Some(sink);
        }
    }
    /// The current call's statistics so far.
    pub async fn stats(&self) -> Result<Option<StatsHistory>> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx))?;
        rx.await.map_err(|_| CallError::Closed)
    }
    /// Ends any call and stops the client.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Plays nothing; counts frames (for bots and tests that only need the count).
#[derive(Debug, Default)]
pub struct CountingSink {
    /// Frames played.
    pub frames: Arc<std::sync::atomic::AtomicU64>,
}

impl AudioSink for CountingSink {
    fn play(&mut self, _frame: &AudioFrame) -> dyad_media::Result<()> {
        self.frames.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
