//! The client: one task that owns the signalling connection (reconnecting with backoff), the
//! current call's state machine, its peer connection and its media pipelines. The outside world
//! gets a [`ClientHandle`] for commands and one stream of [`CallEvent`]s.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dyad_media::{AudioFrame, AudioSink, VideoFrame};
use dyad_proto::http::IceConfig;
use dyad_proto::{ClientMessage, Contact, EndReason, Presence, ServerMessage};
use tokio::sync::{mpsc, oneshot, watch};

use crate::bwe::{BandwidthEstimator, BandwidthUsage, BweConfig};
use crate::error::{CallError, Result};
use crate::jitter::{FrameAssembler, JitterConfig, JitterEvent};
use crate::machine::{Action, CallMachine, Direction, Input, Phase};
use crate::media::{
    self, AudioInput, AudioReceiver, DecodeEvent, DecodedVideo, FrameToDecode, MediaConfig,
    SendControl, SendEvent, VideoInput, OPUS_BPS,
};
use crate::rtc::{self, ConnState, Feedback, Kind, RtcConfig, RtcEvent, RtcPeer, RtpOut};
use crate::signal::{self, Connection, ServerUrl};
use crate::stats::{
    median_ms, EstimateStats, FreezeMeter, InboundRtp, JitterMeter, LossMeter, OutboundRtp, Rate,
    RemoteInboundRtp, StatsHistory, StatsSnapshot,
};

/// Messages queued while the signalling connection is down.
pub const MAX_QUEUED_MESSAGES: usize = 256;
/// Reconnect backoff: first and longest wait.
pub const BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(8));
/// With packets of a kind arriving but not one frame of it decoding this long after connecting,
/// the call ends `media_failed`.
pub const MEDIA_FAILED_AFTER: Duration = Duration::from_secs(8);

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
    /// Accept every incoming call at once (the echo bot).
    pub auto_accept: bool,
    /// How long our invites ring, ms.
    pub invite_lifetime_ms: u64,
    /// Where the bandwidth estimate starts, bit/s (it then moves by the estimator's rules).
    pub start_bps: u64,
    /// Fault injection for tests of the receive side: corrupt every Nth encoded video frame
    /// before it is sent (`Some(1)`: every frame). Never set in normal use.
    pub corrupt_every: Option<u32>,
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
    /// The contact list.
    Contacts(Vec<Contact>),
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
    },
    /// The first remote video frame decoded.
    FirstRemoteFrame {
        /// Call id.
        call_id: String,
        /// Since the answer was applied (caller) or created (callee).
        after_answer: Duration,
    },
    /// Once a second during a call.
    Stats(Box<StatsSnapshot>),
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
enum Command {
    Dial(String),
    Accept,
    Reject,
    Hangup,
    MuteAudio(bool),
    MuteVideo(bool),
    SwitchVideo(VideoInput),
    SwitchAudio(AudioInput),
    Contacts(ContactCmd),
    Stats(oneshot::Sender<Option<StatsHistory>>),
    Shutdown(oneshot::Sender<()>),
}

#[derive(Debug)]
enum ContactCmd {
    Add(String),
    Remove(String),
}

/// Commands for a running client.
#[derive(Clone)]
pub struct ClientHandle {
    cmd: mpsc::UnboundedSender<Command>,
    remote_video: watch::Receiver<Option<Arc<DecodedVideo>>>,
    self_view: watch::Receiver<Option<Arc<VideoFrame>>>,
    audio_out: Arc<Mutex<Option<Box<dyn AudioSink>>>>,
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
    /// Switches the audio source without re-dialling.
    pub fn switch_audio(&self, input: AudioInput) -> Result<()> {
        self.send(Command::SwitchAudio(input))
    }
    /// Adds a contact.
    pub fn add_contact(&self, user: &str) -> Result<()> {
        self.send(Command::Contacts(ContactCmd::Add(user.into())))
    }
    /// Removes a contact.
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

/// Signs in, connects and starts the client task.
pub async fn start(
    config: ClientConfig,
) -> Result<(ClientHandle, mpsc::UnboundedReceiver<CallEvent>)> {
    let session = if let Some(token) = &config.token {
        dyad_proto::http::Session {
            token: token.clone(),
            username: config.username.clone(),
            expires_at: 0,
        }
    } else if config.register {
        signal::login_or_register(&config.server, &config.username, &config.password).await?
    } else {
        signal::login(&config.server, &config.username, &config.password).await?
    };
    let conn = Connection::connect(&config.server, &session.token, &config.device).await?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (video_tx, video_rx) = watch::channel(None);
    let (self_tx, self_rx) = watch::channel(None);
    let audio_out: Arc<Mutex<Option<Box<dyn AudioSink>>>> = Arc::new(Mutex::new(None));
    let _ = ev_tx.send(CallEvent::SignedIn {
        username: session.username.clone(),
        device: conn.device.clone(),
    });
    let client = Client {
        config,
        token: session.token,
        conn: Some(conn),
        queued: VecDeque::new(),
        events: ev_tx,
        call: None,
        remote_video: video_tx,
        self_view: self_tx,
        audio_out: Arc::clone(&audio_out),
        backoff: BACKOFF.0,
        reconnect_at: None,
        last_ping: Instant::now(),
    };
    tokio::spawn(client.run(cmd_rx));
    Ok((
        ClientHandle {
            cmd: cmd_tx,
            remote_video: video_rx,
            self_view: self_rx,
            audio_out,
        },
        ev_rx,
    ))
}

struct Client {
    config: ClientConfig,
    token: String,
    conn: Option<Connection>,
    queued: VecDeque<ClientMessage>,
    events: mpsc::UnboundedSender<CallEvent>,
    call: Option<Call>,
    remote_video: watch::Sender<Option<Arc<DecodedVideo>>>,
    self_view: watch::Sender<Option<Arc<VideoFrame>>>,
    audio_out: Arc<Mutex<Option<Box<dyn AudioSink>>>>,
    backoff: Duration,
    reconnect_at: Option<Instant>,
    last_ping: Instant,
}

/// Media threads and their channels for one connected call.
struct MediaRuntime {
    ctl: Arc<SendControl>,
    decode_tx: std_mpsc::Sender<FrameToDecode>,
    audio_echo: Option<std_mpsc::SyncSender<AudioFrame>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for MediaRuntime {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::Relaxed);
        // Threads notice `stop` within one frame; they are detached rather than joined so a
        // camera stuck in a driver call can never hang the call task.
        self.threads.clear();
    }
}

#[derive(Default)]
struct Counters {
    video_out: OutboundRtp,
    audio_out: OutboundRtp,
    video_in: InboundRtp,
    audio_in: InboundRtp,
    remote_video: RemoteInboundRtp,
    remote_audio: RemoteInboundRtp,
    captured: u64,
    encode_time_sec: f64,
    decode_time_sec: f64,
    video_loss: LossMeter,
    audio_loss: LossMeter,
    video_jitter: JitterMeter,
    audio_jitter: JitterMeter,
    freezes: FreezeMeter,
    latencies: Vec<Duration>,
    rates: [Rate; 8],
    last_encode: (u64, f64),
    last_decode: (u64, f64),
    events: Vec<String>,
    last_size: (u32, u32),
}

struct Call {
    m: CallMachine,
    peer: Option<RtcPeer>,
    rtc_rx: mpsc::UnboundedReceiver<RtcEvent>,
    rtc_tx: mpsc::UnboundedSender<RtcEvent>,
    send_rx: mpsc::UnboundedReceiver<SendEvent>,
    send_tx: mpsc::UnboundedSender<SendEvent>,
    dec_rx: mpsc::UnboundedReceiver<DecodeEvent>,
    dec_tx: mpsc::UnboundedSender<DecodeEvent>,
    media: Option<MediaRuntime>,
    pending_candidates: Vec<dyad_proto::Candidate>,
    remote_video_ssrc: Option<u32>,
    local_ssrc: (u32, u32),
    video_seq: u16,
    audio_seq: u16,
    transport_seq: u64,
    packetizer: rtc::Vp8Packetizer,
    bwe: BandwidthEstimator,
    jitter: FrameAssembler,
    audio_rx: Option<AudioReceiver>,
    connected_at: Option<Instant>,
    last_stats: Instant,
    history: StatsHistory,
    c: Counters,
    muted: (bool, bool),
    last_pli_sent: Option<Instant>,
    answered_at: Option<Instant>,
}

impl Call {
    fn new(m: CallMachine, now: Instant, start_bps: u64) -> Self {
        let (rtc_tx, rtc_rx) = mpsc::unbounded_channel();
        let (send_tx, send_rx) = mpsc::unbounded_channel();
        let (dec_tx, dec_rx) = mpsc::unbounded_channel();
        Self {
            m,
            peer: None,
            rtc_rx,
            rtc_tx,
            send_rx,
            send_tx,
            dec_rx,
            dec_tx,
            media: None,
            pending_candidates: Vec::new(),
            remote_video_ssrc: None,
            local_ssrc: (0, 0),
            video_seq: 0,
            audio_seq: 0,
            transport_seq: 0,
            packetizer: rtc::Vp8Packetizer::default(),
            bwe: BandwidthEstimator::new(
                BweConfig {
                    start_bps,
                    ..BweConfig::default()
                },
                now,
            ),
            jitter: FrameAssembler::new(JitterConfig::default()),
            audio_rx: None,
            connected_at: None,
            last_stats: now,
            history: StatsHistory::default(),
            c: Counters::default(),
            muted: (false, false),
            last_pli_sent: None,
            answered_at: None,
        }
    }
}

fn new_call_id() -> String {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        // Fall back on time: ids only need to be unique per caller.
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b[..12].copy_from_slice(&t.to_le_bytes()[..12]);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn recv_opt<T>(rx: Option<&mut mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Client {
    fn emit(&self, e: CallEvent) {
        let _ = self.events.send(e);
    }

    async fn send(&mut self, msg: ClientMessage) {
        if let Some(conn) = &mut self.conn {
            if conn.send(&msg).await.is_ok() {
                return;
            }
            self.lost_signalling();
        }
        if self.queued.len() < MAX_QUEUED_MESSAGES {
            self.queued.push_back(msg);
        }
    }

    fn lost_signalling(&mut self) {
        if self.conn.take().is_some() {
            self.emit(CallEvent::SignallingLost);
            self.backoff = BACKOFF.0;
            self.reconnect_at = Some(Instant::now() + self.backoff);
        }
    }

    async fn try_reconnect(&mut self) {
        match Connection::connect(&self.config.server, &self.token, &self.config.device).await {
            Ok(conn) => {
                self.conn = Some(conn);
                self.reconnect_at = None;
                self.emit(CallEvent::SignallingRestored);
                while let Some(m) = self.queued.pop_front() {
                    if let Some(c) = &mut self.conn {
                        if c.send(&m).await.is_err() {
                            self.lost_signalling();
                            break;
                        }
                    }
                }
            }
            Err(CallError::Server { code, message })
                if code == "unauthorized" || code == "token_expired" =>
            {
                // The token is gone: sign in again with the password.
                match signal::login(
                    &self.config.server,
                    &self.config.username,
                    &self.config.password,
                )
                .await
                {
                    Ok(s) => {
                        self.token = s.token;
                        self.reconnect_at = Some(Instant::now());
                    }
                    Err(_) => {
                        self.emit(CallEvent::Error { code, message });
                        self.schedule_retry();
                    }
                }
            }
            Err(_) => self.schedule_retry(),
        }
    }

    fn schedule_retry(&mut self) {
        self.backoff = (self.backoff * 2).min(BACKOFF.1);
        self.reconnect_at = Some(Instant::now() + self.backoff);
    }

    async fn run(mut self, mut cmd_rx: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let call = self.call.as_mut();
            let (rtc_rx, send_rx, dec_rx) = match call {
                Some(c) => (
                    Some(&mut c.rtc_rx),
                    Some(&mut c.send_rx),
                    Some(&mut c.dec_rx),
                ),
                None => (None, None, None),
            };
            let conn = self.conn.as_mut();
            tokio::select! {
                biased;
                cmd = cmd_rx.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        self.command_hangup().await;
                        if let Some(c) = self.call.take() {
                            self.finish(c).await;
                        }
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(c).await,
                    None => {
                        self.command_hangup().await;
                        if let Some(c) = self.call.take() {
                            self.finish(c).await;
                        }
                        return;
                    }
                },
                ev = recv_opt(send_rx) => if let Some(ev) = ev { self.on_send_event(ev).await },
                ev = recv_opt(rtc_rx) => if let Some(ev) = ev { self.on_rtc_event(ev).await },
                ev = recv_opt(dec_rx) => if let Some(ev) = ev { self.on_decode_event(ev).await },
                msg = async { match conn { Some(c) => c.recv().await, None => std::future::pending().await } } => {
                    match msg {
                        Ok(Some(m)) => self.on_server(m).await,
                        Err(CallError::Server { code, message }) if code == "replaced" => {
                            // Another connection of this device took over: reconnecting would
                            // only take it back and start a tug of war.
                            self.conn = None;
                            self.emit(CallEvent::Error { code, message });
                        }
                        _ => self.lost_signalling(),
                    }
                }
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Dial(user) => {
                if self.call.is_some() {
                    self.emit(CallEvent::Error {
                        code: "invalid_state".into(),
                        message: "already in a call".into(),
                    });
                    return;
                }
                let call_id = new_call_id();
                let (m, actions) = CallMachine::outgoing(
                    call_id.clone(),
                    user.clone(),
                    self.config.invite_lifetime_ms,
                );
                self.call = Some(Call::new(m, now, self.config.start_bps));
                self.emit(CallEvent::Dialling {
                    call_id,
                    peer: user,
                });
                self.run_actions(actions).await;
            }
            Command::Accept => self.feed(Input::Accept).await,
            Command::Reject => self.feed(Input::Reject).await,
            Command::Hangup => self.feed(Input::Hangup).await,
            Command::MuteAudio(m) => {
                if let Some(c) = &mut self.call {
                    c.muted.0 = m;
                    if let Some(media) = &c.media {
                        media.ctl.audio_muted.store(m, Ordering::Relaxed);
                    }
                }
            }
            Command::MuteVideo(m) => {
                if let Some(c) = &mut self.call {
                    c.muted.1 = m;
                    if let Some(media) = &c.media {
                        media.ctl.video_muted.store(m, Ordering::Relaxed);
                    }
                }
            }
            Command::SwitchVideo(input) => {
                self.config.media.video = input.clone();
                if let Some(media) = self.call.as_ref().and_then(|c| c.media.as_ref()) {
                    if let Ok(mut s) = media.ctl.switch_video.lock() {
                        *s = Some(input);
                    }
                }
            }
            Command::SwitchAudio(input) => {
                self.config.media.audio = input;
                if let Some(media) = self.call.as_ref().and_then(|c| c.media.as_ref()) {
                    if let Ok(mut s) = media.ctl.switch_audio.lock() {
                        *s = Some(input);
                    }
                }
            }
            Command::Contacts(c) => {
                let msg = match c {
                    ContactCmd::Add(username) => ClientMessage::ContactAdd { username },
                    ContactCmd::Remove(username) => ClientMessage::ContactRemove { username },
                };
                self.send(msg).await;
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.call.as_ref().map(|c| c.history.clone()));
            }
            Command::Shutdown(_) => {}
        }
    }

    async fn command_hangup(&mut self) {
        if self.call.is_some() {
            self.feed(Input::Hangup).await;
        }
    }

    async fn feed(&mut self, input: Input) {
        let Some(call) = &mut self.call else { return };
        let actions = call.m.handle(Instant::now(), input);
        self.run_actions(actions).await;
    }

    async fn run_actions(&mut self, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            let follow = self.run_action(action).await;
            if let Some(input) = follow {
                if let Some(call) = &mut self.call {
                    let more = call.m.handle(Instant::now(), input);
                    queue.extend(more);
                }
            }
        }
    }

    async fn ensure_peer(&mut self) -> Result<()> {
        let Some(call) = &mut self.call else {
            return Err(CallError::InvalidState("no call"));
        };
        if call.peer.is_some() {
            return Ok(());
        }
        let ice = signal::ice_servers(&self.config.server, &self.token)
            .await
            .unwrap_or(IceConfig {
                ice_servers: Vec::new(),
                ttl_secs: 0,
            });
        let peer = RtcPeer::new(
            &RtcConfig {
                ice_servers: ice.ice_servers,
                relay_only: self.config.relay_only,
            },
            call.rtc_tx.clone(),
        )
        .await?;
        call.peer = Some(peer);
        Ok(())
    }

    /// Runs one action; may return an input to feed back.
    async fn run_action(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Send(msg) => {
                self.send(msg).await;
                None
            }
            Action::CreateOffer { restart } => {
                if let Err(e) = self.ensure_peer().await {
                    self.report(&e);
                    return Some(Input::NegotiationFailed(EndReason::MediaFailed));
                }
                let call = self.call.as_mut()?;
                if restart {
                    call.c.events.push("ice_restart".into());
                }
                let peer = call.peer.as_mut()?;
                match peer.create_offer(restart).await {
                    Ok(sdp) => Some(Input::OfferReady { sdp, restart }),
                    Err(e) => {
                        self.report(&e);
                        Some(Input::NegotiationFailed(EndReason::MediaFailed))
                    }
                }
            }
            Action::CreateAnswer { sdp, renegotiation } => {
                if let Err(e) = self.ensure_peer().await {
                    self.report(&e);
                    return Some(Input::NegotiationFailed(EndReason::MediaFailed));
                }
                let call = self.call.as_mut()?;
                let peer = call.peer.as_mut()?;
                let res = peer.answer(&sdp).await;
                if !renegotiation {
                    call.answered_at = Some(Instant::now());
                }
                let pending = std::mem::take(&mut call.pending_candidates);
                for c in &pending {
                    let _ = peer.add_remote_candidate(c).await;
                }
                if renegotiation {
                    call.c.events.push("ice_restart".into());
                }
                match res {
                    Ok(answer) => {
                        if !renegotiation {
                            self.emit_connecting();
                        }
                        Some(Input::AnswerReady(answer))
                    }
                    Err(e) => {
                        self.report(&e);
                        Some(Input::NegotiationFailed(EndReason::MediaFailed))
                    }
                }
            }
            Action::ApplyAnswer(sdp) => {
                let call = self.call.as_mut()?;
                let peer = call.peer.as_mut()?;
                let res = peer.apply_answer(&sdp).await;
                call.answered_at = Some(Instant::now());
                let pending = std::mem::take(&mut call.pending_candidates);
                for c in &pending {
                    let _ = peer.add_remote_candidate(c).await;
                }
                match res {
                    Ok(()) => {
                        self.emit_connecting();
                        None
                    }
                    Err(e) => {
                        self.report(&e);
                        Some(Input::MediaFailed)
                    }
                }
            }
            Action::AddCandidates(cands) => {
                let call = self.call.as_mut()?;
                match &call.peer {
                    Some(peer) if peer.has_remote_description().await => {
                        for c in &cands {
                            if let Err(e) = peer.add_remote_candidate(c).await {
                                tracing::debug!(error = %e, "remote candidate refused");
                            }
                        }
                    }
                    _ => {
                        let room = crate::machine::MAX_PENDING_CANDIDATES
                            .saturating_sub(call.pending_candidates.len());
                        call.pending_candidates.extend(cands.into_iter().take(room));
                    }
                }
                None
            }
            Action::Connected => {
                if let Err(e) = self.start_media().await {
                    self.report(&e);
                    return Some(Input::MediaFailed);
                }
                let call = self.call.as_ref()?;
                let call_id = call.m.call_id.clone();
                self.emit(CallEvent::Connected { call_id });
                None
            }
            Action::End(_) => {
                if let Some(call) = self.call.take() {
                    self.finish(call).await;
                }
                None
            }
        }
    }

    fn emit_connecting(&self) {
        if let Some(c) = &self.call {
            self.emit(CallEvent::Connecting {
                call_id: c.m.call_id.clone(),
            });
        }
    }

    fn report(&self, e: &CallError) {
        tracing::warn!(error = %e, "call error");
        self.emit(CallEvent::Error {
            code: e.code().into(),
            message: e.to_string(),
        });
    }

    async fn finish(&mut self, mut call: Call) {
        call.media = None;
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

    async fn start_media(&mut self) -> Result<()> {
        let Some(call) = &mut self.call else {
            return Ok(());
        };
        let now = Instant::now();
        call.connected_at = Some(now);
        call.last_stats = now;
        for r in &mut call.c.rates {
            r.per_second(now, 0);
        }
        let ctl = Arc::new(SendControl {
            self_view: Some(self.self_view.clone()),
            ..SendControl::default()
        });
        let cap = media::max_bps_for(
            self.config.media.format.width,
            self.config.media.format.height,
        );
        call.bwe.set_max(cap + u64::from(OPUS_BPS));
        ctl.video_bps.store(
            call.bwe.target_bps().saturating_sub(u64::from(OPUS_BPS)),
            Ordering::Relaxed,
        );
        ctl.audio_muted.store(call.muted.0, Ordering::Relaxed);
        ctl.video_muted.store(call.muted.1, Ordering::Relaxed);
        let echo = matches!(self.config.media.video, VideoInput::Echo);
        let (video_echo_tx, video_echo_rx) = if echo {
            let (tx, rx) = std_mpsc::sync_channel(1);
            (Some(tx), Some(Arc::new(Mutex::new(rx))))
        } else {
            (None, None)
        };
        let (audio_echo_tx, audio_echo_rx) = if self.config.media.audio == AudioInput::Echo {
            let (tx, rx) = std_mpsc::sync_channel(8);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (decode_tx, decode_rx) = std_mpsc::channel();
        let threads = vec![
            media::spawn_video_decoder(
                decode_rx,
                self.remote_video.clone(),
                call.dec_tx.clone(),
                video_echo_tx,
            )?,
            media::spawn_video_sender(
                &self.config.media,
                Arc::clone(&ctl),
                call.send_tx.clone(),
                video_echo_rx,
            )?,
            media::spawn_audio_sender(
                self.config.media.audio,
                Arc::clone(&ctl),
                call.send_tx.clone(),
                audio_echo_rx,
            )?,
        ];
        call.audio_rx = Some(AudioReceiver::new()?);
        if let Some(peer) = &call.peer {
            call.local_ssrc = (
                peer.local_ssrc(Kind::Video).await,
                peer.local_ssrc(Kind::Audio).await,
            );
        }
        call.media = Some(MediaRuntime {
            ctl,
            decode_tx,
            audio_echo: audio_echo_tx,
            threads,
        });
        Ok(())
    }

    async fn on_send_event(&mut self, ev: SendEvent) {
        let Some(call) = &mut self.call else { return };
        let now = Instant::now();
        match ev {
            SendEvent::Captured => call.c.captured += 1,
            SendEvent::EncoderDropped => call.c.video_out.frames_dropped_by_encoder += 1,
            SendEvent::SourceFailed(msg) => {
                self.emit(CallEvent::Error {
                    code: "video_source_failed".into(),
                    message: msg,
                });
            }
            SendEvent::Video(v) => {
                let Some(peer) = &call.peer else { return };
                let o = &mut call.c.video_out;
                o.frames_encoded += 1;
                o.key_frames_encoded += u64::from(v.keyframe);
                call.c.encode_time_sec += v.encode_time.as_secs_f64();
                if (v.width, v.height) != call.c.last_size {
                    if call.c.last_size != (0, 0) {
                        call.c
                            .events
                            .push(format!("resolution_change {}x{}", v.width, v.height));
                    }
                    call.c.last_size = (v.width, v.height);
                }
                o.frame_width = v.width;
                o.frame_height = v.height;
                let data = match self.config.corrupt_every {
                    Some(n) if n > 0 && o.frames_encoded % u64::from(n) == 0 => corrupt(&v.data),
                    _ => v.data,
                };
                let payloads = call.packetizer.packetize(&data);
                let n = payloads.len();
                for (i, payload) in payloads.into_iter().enumerate() {
                    call.transport_seq += 1;
                    let size = payload.len() + 12 + 8;
                    call.bwe.on_packet_sent(call.transport_seq, size, now);
                    call.c.video_out.packets_sent += 1;
                    call.c.video_out.bytes_sent += payload.len() as u64;
                    call.video_seq = call.video_seq.wrapping_add(1);
                    let out = RtpOut {
                        seq: call.video_seq,
                        timestamp: v.rtp_timestamp,
                        marker: i + 1 == n,
                        payload,
                        transport_seq: call.transport_seq as u16,
                    };
                    if let Err(e) = peer.write_rtp(Kind::Video, out).await {
                        tracing::debug!(error = %e, "video write");
                    }
                }
            }
            SendEvent::Audio(a) => {
                let Some(peer) = &call.peer else { return };
                call.transport_seq += 1;
                call.bwe
                    .on_packet_sent(call.transport_seq, a.data.len() + 20, now);
                call.c.audio_out.packets_sent += 1;
                call.c.audio_out.bytes_sent += a.data.len() as u64;
                call.c.audio_out.audio_level_dbfs = a.level_dbfs;
                call.audio_seq = call.audio_seq.wrapping_add(1);
                let out = RtpOut {
                    seq: call.audio_seq,
                    timestamp: a.rtp_timestamp,
                    marker: false,
                    payload: a.data,
                    transport_seq: call.transport_seq as u16,
                };
                if let Err(e) = peer.write_rtp(Kind::Audio, out).await {
                    tracing::debug!(error = %e, "audio write");
                }
            }
        }
    }

    async fn on_decode_event(&mut self, ev: DecodeEvent) {
        let Some(call) = &mut self.call else { return };
        match ev {
            DecodeEvent::Decoded {
                decode_time,
                width,
                height,
                marker_frame,
                latency,
                ..
            } => {
                if call.c.video_in.frames_decoded == 0 {
                    if let Some(at) = call.answered_at {
                        let _ = self.events.send(CallEvent::FirstRemoteFrame {
                            call_id: call.m.call_id.clone(),
                            after_answer: at.elapsed(),
                        });
                    }
                }
                let i = &mut call.c.video_in;
                i.frames_decoded += 1;
                i.frame_width = width;
                i.frame_height = height;
                i.last_marker_frame = marker_frame.or(i.last_marker_frame);
                call.c.decode_time_sec += decode_time.as_secs_f64();
                call.c.freezes.on_frame(Instant::now());
                if let Some(l) = latency {
                    if call.c.latencies.len() < 1000 {
                        call.c.latencies.push(l);
                    }
                }
            }
            DecodeEvent::Undecodable => {
                call.c.video_in.frames_dropped += 1;
                self.request_keyframe().await;
            }
        }
    }

    async fn send_nacks(&mut self, now: Instant) {
        let Some(call) = &mut self.call else { return };
        let rtt = call
            .c
            .remote_video
            .round_trip_time
            .map_or(Duration::from_millis(50), Duration::from_secs_f64);
        let seqs = call.jitter.nacks(now, rtt);
        if let (false, Some(peer), Some(ssrc)) =
            (seqs.is_empty(), &call.peer, call.remote_video_ssrc)
        {
            if peer.send_nack(ssrc, &seqs).await.is_ok() {
                call.c.video_in.nack_count += seqs.len() as u64;
            }
        }
    }

    async fn request_keyframe(&mut self) {
        let Some(call) = &mut self.call else { return };
        let now = Instant::now();
        if call
            .last_pli_sent
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(200))
        {
            return;
        }
        if let (Some(peer), Some(ssrc)) = (&call.peer, call.remote_video_ssrc) {
            if peer.send_pli(ssrc).await.is_ok() {
                call.last_pli_sent = Some(now);
                call.c.video_in.pli_count += 1;
                call.c.events.push("keyframe_request_sent".into());
            }
        }
    }

    async fn on_rtc_event(&mut self, ev: RtcEvent) {
        let Some(call) = &mut self.call else { return };
        match ev {
            RtcEvent::LocalCandidate(c) => self.feed(Input::LocalCandidate(c)).await,
            RtcEvent::State(s) => {
                let input = match s {
                    ConnState::Connected => Input::IceConnected,
                    ConnState::Disconnected => Input::IceDisconnected,
                    ConnState::Failed => Input::IceFailed,
                    _ => return,
                };
                self.feed(input).await;
            }
            RtcEvent::RemoteTrack { kind, ssrc } => {
                if kind == Kind::Video {
                    call.remote_video_ssrc = Some(ssrc);
                }
            }
            RtcEvent::Rtp(p) => match p.kind {
                Kind::Video => {
                    call.c.video_in.packets_received += 1;
                    call.c.video_in.bytes_received += p.payload.len() as u64;
                    call.c.video_loss.on_packet(p.seq);
                    call.c
                        .video_jitter
                        .on_packet(p.arrival, p.timestamp, 90_000);
                    call.jitter.push(crate::jitter::RtpIn {
                        seq: p.seq,
                        timestamp: p.timestamp,
                        marker: p.marker,
                        payload: p.payload,
                        arrival: p.arrival,
                    });
                    self.drain_jitter().await;
                }
                Kind::Audio => {
                    call.c.audio_in.packets_received += 1;
                    call.c.audio_in.bytes_received += p.payload.len() as u64;
                    call.c.audio_loss.on_packet(p.seq);
                    call.c
                        .audio_jitter
                        .on_packet(p.arrival, p.timestamp, 48_000);
                    let Some(rx) = &mut call.audio_rx else { return };
                    let frames = rx.push(p.seq, &p.payload);
                    let echo = call.media.as_ref().and_then(|m| m.audio_echo.as_ref());
                    let mut sink = self.audio_out.lock().ok();
                    for f in frames {
                        if let Some(Some(s)) = sink.as_deref_mut() {
                            let _ = s.play(&f);
                        }
                        if let Some(e) = echo {
                            let _ = e.try_send(f);
                        }
                    }
                }
            },
            RtcEvent::Rtcp(fbs) => {
                let now = Instant::now();
                let ntp = rtc::ntp_middle_32(SystemTime::now());
                for fb in fbs {
                    match fb {
                        Feedback::Pli | Feedback::Fir => {
                            if matches!(fb, Feedback::Pli) {
                                call.c.video_out.pli_count += 1;
                            } else {
                                call.c.video_out.fir_count += 1;
                            }
                            call.c.events.push("keyframe_request_received".into());
                            if let Some(m) = &call.media {
                                m.ctl.keyframe.store(true, Ordering::Relaxed);
                            }
                        }
                        Feedback::Nack(n) => call.c.video_out.nack_count += u64::from(n),
                        Feedback::ReceiverReport {
                            ssrc,
                            fraction_lost,
                            total_lost,
                            jitter,
                            last_sender_report,
                            delay,
                        } => {
                            let rtt = rtc::rtt_from_report(ntp, last_sender_report, delay);
                            let (r, rate) = if ssrc == call.local_ssrc.0 {
                                call.bwe.on_receiver_report(fraction_lost, rtt, now);
                                (&mut call.c.remote_video, 90_000.0)
                            } else if ssrc == call.local_ssrc.1 {
                                (&mut call.c.remote_audio, 48_000.0)
                            } else {
                                continue;
                            };
                            r.round_trip_time = rtt.map(|d| d.as_secs_f64()).or(r.round_trip_time);
                            r.fraction_lost = f64::from(fraction_lost) / 256.0;
                            r.packets_lost = u64::from(total_lost);
                            r.jitter = f64::from(jitter) / rate;
                        }
                        Feedback::SenderReport { .. } => {}
                        Feedback::Transport(results) => {
                            call.bwe.on_transport_feedback(&results, now);
                        }
                    }
                }
                if let Some(m) = &call.media {
                    let video = call.bwe.target_bps().saturating_sub(u64::from(OPUS_BPS));
                    m.ctl.video_bps.store(video, Ordering::Relaxed);
                }
            }
        }
    }

    async fn drain_jitter(&mut self) {
        let now = Instant::now();
        let mut want_keyframe = false;
        {
            let Some(call) = &mut self.call else { return };
            while let Some(ev) = call.jitter.poll(now) {
                match ev {
                    JitterEvent::Frame(f) => {
                        call.c.video_in.frames_received += 1;
                        call.c.video_in.jitter_buffer_delay +=
                            now.saturating_duration_since(f.first_arrival).as_secs_f64();
                        call.c.video_in.jitter_buffer_emitted_count += 1;
                        if let Some(m) = &call.media {
                            let _ = m.decode_tx.send(FrameToDecode {
                                data: f.data,
                                rtp_timestamp: f.rtp_timestamp,
                                complete_at: f.complete_at,
                            });
                        }
                    }
                    JitterEvent::KeyframeNeeded => want_keyframe = true,
                    JitterEvent::Dropped { frames, .. } => {
                        call.c.video_in.frames_dropped += u64::from(frames);
                    }
                }
            }
        }
        if want_keyframe {
            self.request_keyframe().await;
        }
        self.send_nacks(now).await;
    }

    async fn on_server(&mut self, msg: ServerMessage) {
        let now = Instant::now();
        let for_call =
            |id: &str, call: &Option<Call>| call.as_ref().is_some_and(|c| c.m.call_id == id);
        match msg {
            ServerMessage::Welcome { .. } | ServerMessage::Pong | ServerMessage::Ack { .. } => {}
            ServerMessage::Contacts { contacts } => self.emit(CallEvent::Contacts(contacts)),
            ServerMessage::Presence { username, presence } => {
                self.emit(CallEvent::Presence { username, presence })
            }
            ServerMessage::Invite {
                call_id,
                from,
                sdp,
                glare,
                ..
            } => {
                if self.call.is_some() && !glare {
                    // Busy on this device (the server already knows if the user is in a call).
                    self.send(ClientMessage::Reject { call_id }).await;
                    return;
                }
                if glare {
                    if let Some(old) = self.call.take() {
                        self.finish(old).await;
                    }
                }
                let (m, actions) = CallMachine::incoming(call_id.clone(), from.clone(), sdp);
                self.call = Some(Call::new(m, now, self.config.start_bps));
                self.emit(CallEvent::Incoming { call_id, from });
                self.run_actions(actions).await;
                if self.config.auto_accept || glare {
                    self.feed(Input::Accept).await;
                }
            }
            ServerMessage::Ringing { call_id, .. } if for_call(&call_id, &self.call) => {
                self.emit(CallEvent::RemoteRinging { call_id });
                self.feed(Input::RemoteRinging).await;
            }
            ServerMessage::Answer {
                call_id,
                device,
                sdp,
            } if for_call(&call_id, &self.call) => {
                self.feed(Input::RemoteAnswer { device, sdp }).await
            }
            ServerMessage::Candidates {
                call_id,
                candidates,
                ..
            } if for_call(&call_id, &self.call) => {
                self.feed(Input::RemoteCandidates(candidates)).await
            }
            ServerMessage::Negotiate {
                call_id,
                description,
                ..
            } if for_call(&call_id, &self.call) => {
                self.feed(Input::RemoteNegotiate(description)).await
            }
            ServerMessage::CallEnded {
                call_id, reason, ..
            } if for_call(&call_id, &self.call) => self.feed(Input::RemoteEnded(reason)).await,
            ServerMessage::Error(e) => {
                // An error about our call's setup (unknown user, ...) ends it.
                let dial_failed = self.call.as_ref().is_some_and(|c| {
                    c.m.direction == Direction::Outgoing && c.m.phase() == &Phase::OutgoingRinging
                });
                self.emit(CallEvent::Error {
                    code: e.code.to_string(),
                    message: e.message.clone(),
                });
                if dial_failed
                    && matches!(
                        e.code,
                        dyad_proto::ErrorCode::UnknownUser
                            | dyad_proto::ErrorCode::SelfReference
                            | dyad_proto::ErrorCode::InvalidField
                            | dyad_proto::ErrorCode::DuplicateCall
                    )
                {
                    self.feed(Input::RemoteEnded(EndReason::Unavailable)).await;
                }
            }
            // Messages for calls that are not ours (stale, or a candidate for a closed call)
            // are ignored.
            _ => {}
        }
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        if let Some(at) = self.reconnect_at {
            if now >= at {
                self.try_reconnect().await;
            }
        }
        if self.conn.is_some()
            && now.saturating_duration_since(self.last_ping) >= Duration::from_secs(10)
        {
            self.last_ping = now;
            self.send(ClientMessage::Ping).await;
        }
        if self.call.is_none() {
            return;
        }
        self.feed(Input::Tick).await;
        self.drain_jitter().await;
        let media_failed = {
            let Some(call) = &mut self.call else { return };
            let Some(at) = call.connected_at else { return };
            let quiet = now.saturating_duration_since(at) >= MEDIA_FAILED_AFTER;
            // A kind whose packets arrive but of which not one frame ever decoded (keyframe
            // requests included) is a broken peer, not a bad network.
            let video_dead =
                call.c.video_in.packets_received > 0 && call.c.video_in.frames_decoded == 0;
            let audio_dead = call.c.audio_in.packets_received > 0
                && call.audio_rx.as_ref().is_some_and(|a| a.decoded == 0);
            quiet && (video_dead || audio_dead)
        };
        if media_failed {
            self.feed(Input::MediaFailed).await;
            return;
        }
        let due = self.call.as_ref().is_some_and(|c| {
            c.connected_at.is_some()
                && now.saturating_duration_since(c.last_stats) >= Duration::from_secs(1)
        });
        if due {
            self.snapshot(now).await;
        }
    }

    async fn snapshot(&mut self, now: Instant) {
        let Some(call) = &mut self.call else { return };
        let (path, transport) = match &call.peer {
            Some(p) => (p.path().await, Some(p.transport())),
            None => (None, None),
        };
        let c = &mut call.c;
        call.last_stats = now;
        let video_target = call.bwe.target_bps().saturating_sub(u64::from(OPUS_BPS));
        let mut vo = c.video_out.clone();
        vo.kind = "video";
        vo.codec = "video/VP8";
        vo.ssrc = call.local_ssrc.0;
        vo.bitrate = c.rates[0].per_second(now, vo.bytes_sent) * 8.0;
        vo.frames_per_second = c.rates[1].per_second(now, vo.frames_encoded);
        vo.capture_frames_per_second = c.rates[2].per_second(now, c.captured);
        vo.target_bitrate = video_target as f64;
        vo.total_encode_time = c.encode_time_sec;
        let frames = vo.frames_encoded - c.last_encode.0.min(vo.frames_encoded);
        vo.encode_time_per_frame_ms = if frames > 0 {
            (c.encode_time_sec - c.last_encode.1) * 1000.0 / frames as f64
        } else {
            0.0
        };
        c.last_encode = (vo.frames_encoded, c.encode_time_sec);
        let frame_budget_ms = 1000.0 / f64::from(self.config.media.format.fps.max(1));
        vo.quality_limitation_reason = if vo.encode_time_per_frame_ms > 0.8 * frame_budget_ms {
            "cpu"
        } else if vo.frame_width < self.config.media.format.width
            || vo.frames_dropped_by_encoder > 0
                && vo.frames_per_second < vo.capture_frames_per_second * 0.9
        {
            "bandwidth"
        } else {
            "none"
        };
        let mut ao = c.audio_out.clone();
        ao.kind = "audio";
        ao.codec = "audio/opus";
        ao.ssrc = call.local_ssrc.1;
        ao.bitrate = c.rates[3].per_second(now, ao.bytes_sent) * 8.0;
        ao.target_bitrate = f64::from(OPUS_BPS);
        ao.quality_limitation_reason = "none";

        let mut vi = c.video_in.clone();
        vi.kind = "video";
        vi.codec = "video/VP8";
        vi.bitrate = c.rates[4].per_second(now, vi.bytes_received) * 8.0;
        vi.frames_per_second = c.rates[5].per_second(now, vi.frames_decoded);
        vi.packets_lost = c.video_loss.lost();
        vi.loss_percent = c.video_loss.interval_loss_percent();
        vi.jitter = c.video_jitter.jitter();
        vi.total_decode_time = c.decode_time_sec;
        let frames = vi.frames_decoded - c.last_decode.0.min(vi.frames_decoded);
        vi.decode_time_per_frame_ms = if frames > 0 {
            (c.decode_time_sec - c.last_decode.1) * 1000.0 / frames as f64
        } else {
            0.0
        };
        c.last_decode = (vi.frames_decoded, c.decode_time_sec);
        vi.freeze_count = c.freezes.count;
        vi.total_freezes_duration = c.freezes.total;
        vi.glass_to_glass_ms = median_ms(&mut c.latencies);
        c.latencies.clear();

        let mut ai = c.audio_in.clone();
        ai.kind = "audio";
        ai.codec = "audio/opus";
        ai.bitrate = c.rates[6].per_second(now, ai.bytes_received) * 8.0;
        ai.packets_lost = c.audio_loss.lost();
        ai.loss_percent = c.audio_loss.interval_loss_percent();
        ai.jitter = c.audio_jitter.jitter();
        if let Some(a) = &call.audio_rx {
            ai.frames_decoded = a.decoded;
            ai.frames_per_second = c.rates[7].per_second(now, a.decoded);
            ai.concealed_frames = a.concealed + a.recovered;
            ai.fec_recovered_frames = a.recovered;
            ai.audio_level_dbfs = a.level_dbfs;
        }
        let mut rv = c.remote_video.clone();
        rv.kind = "video";
        let mut ra = c.remote_audio.clone();
        ra.kind = "audio";
        let snap = StatsSnapshot {
            timestamp: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            call_seconds: call
                .connected_at
                .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64()),
            outbound_video: vo,
            outbound_audio: ao,
            inbound_video: vi,
            inbound_audio: ai,
            remote_inbound_video: rv,
            remote_inbound_audio: ra,
            candidate_pair: path,
            transport,
            estimate: EstimateStats {
                available_outgoing_bitrate: call.bwe.target_bps() as f64,
                delay_based: call.bwe.delay_based_bps() as f64,
                loss_based: call.bwe.loss_based_bps() as f64,
                acknowledged: call.bwe.acknowledged_bps().map(|b| b as f64),
                usage: match call.bwe.usage() {
                    BandwidthUsage::Normal => "normal",
                    BandwidthUsage::Overusing => "overusing",
                    BandwidthUsage::Underusing => "underusing",
                },
            },
            events: std::mem::take(&mut c.events),
        };
        call.history.push(snap.clone());
        self.emit(CallEvent::Stats(Box::new(snap)));
    }
}

/// Keeps the frame's size and keyframe flag but scrambles its body: a decoder must reject it or
/// produce garbage, never crash.
fn corrupt(data: &bytes::Bytes) -> bytes::Bytes {
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
    bytes::Bytes::from(v)
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
