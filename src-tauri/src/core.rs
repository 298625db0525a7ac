//! The app's state and the glue between IPC commands and `dyad-call`: who is signed in where,
//! the contact list, the call in progress, devices and the preview. Nothing here knows Tauri:
//! events leave through an [`Emit`] callback, OS notifications through a [`Notify`] callback, so
//! all of it runs in plain tests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use dyad_call::engine::{CallEvent, CountingSink};
use dyad_call::quality::{Context, Nominal, QualityTracker, Rates, StatsPoint};
use dyad_call::signal::{self, ServerUrl};
use dyad_call::stats::{StatsSnapshot, MAX_HISTORY};
use dyad_call::{ClientConfig, ClientHandle};
use dyad_proto::{EndReason, Presence};

use crate::devices::{self, Preview};
use crate::embedded::{Embedded, ECHO_USER};
use crate::error::{AppError, Result};
use crate::frames::{FrameHub, Picture};
use crate::ipc::{
    AppStateView, CallEnded, CallPhase, CallView, ContactView, DeviceChoice, DeviceList, ErrorKind,
    ExportFormat, ExportResult, FrameStats, HistoryRow, IpcError, Outcome, PresenceView,
    SessionView, UiEvent,
};
use crate::settings::{check_server_url, Settings, TokenStore};
use crate::summary::{summarize, SummaryStore};

/// Where UI events go.
pub type Emit = Arc<dyn Fn(UiEvent) + Send + Sync>;
/// Shows an OS notification (title, body).
pub type Notify = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Longest username accepted from the UI (the server checks the exact rules).
pub const MAX_USERNAME: usize = 64;
/// Longest password accepted from the UI.
pub const MAX_PASSWORD: usize = 256;

/// The app core; cheap to clone.
#[derive(Clone)]
pub struct Core(Arc<Inner>);

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").finish_non_exhaustive()
    }
}

struct Inner {
    data_dir: PathBuf,
    tokens: TokenStore,
    summaries: SummaryStore,
    /// Where exports go (the Downloads folder when the OS has one).
    export_dir: Mutex<PathBuf>,
    frames: FrameHub,
    emit: Mutex<Option<Emit>>,
    notify: Mutex<Option<Notify>>,
    state: Mutex<State>,
    embedded: tokio::sync::Mutex<Option<Embedded>>,
    /// Serialises sign-in / sign-out / server changes.
    session_lock: tokio::sync::Mutex<()>,
}

struct State {
    settings: Settings,
    session: SessionView,
    server_url: Option<String>,
    client: Option<Client>,
    generation: u64,
    online: bool,
    contacts: Vec<ContactView>,
    call: Option<CallView>,
    preview: Option<Preview>,
    ringer: Option<devices::Ringer>,
    /// The current (or last) call's statistics, oldest first, bounded by [`MAX_HISTORY`].
    stats: CallStats,
}

/// One call's statistics as the app keeps them.
struct CallStats {
    call_id: String,
    peer: String,
    tracker: QualityTracker,
    points: std::collections::VecDeque<StatsPoint>,
}

impl CallStats {
    fn new(call_id: &str, peer: &str) -> Self {
        CallStats {
            call_id: call_id.to_string(),
            peer: peer.to_string(),
            // The app sends the engine's default format (640×480 at 30 fps).
            tracker: QualityTracker::new(Nominal::default()),
            points: std::collections::VecDeque::new(),
        }
    }

    /// Scores a snapshot and keeps it.
    fn push(&mut self, snap: StatsSnapshot, ctx: Context) -> StatsPoint {
        let score = self.tracker.update(&snap, ctx);
        let rates = self
            .points
            .back()
            .map(|p| Rates::between(&p.snapshot, &snap))
            .unwrap_or_default();
        let point = StatsPoint::new(snap, score, rates);
        if self.points.len() >= MAX_HISTORY {
            self.points.pop_front();
        }
        self.points.push_back(point.clone());
        point
    }
}

struct Client {
    handle: ClientHandle,
    username: String,
    token: String,
    server: ServerUrl,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The local account's name on the embedded server: the login name if it is a valid username.
fn local_username() -> String {
    let user = std::env::var("USER").unwrap_or_default();
    if dyad_proto::limits::check_username(&user).is_ok() && user != ECHO_USER {
        user
    } else {
        "user".into()
    }
}

impl Core {
    /// Loads settings from `data_dir` and starts the frame server. `use_keyring: false` keeps
    /// tokens in the 0600 file only (tests).
    pub async fn new(data_dir: &Path, use_keyring: bool) -> Result<Core> {
        let settings = Settings::load(&data_dir.join("settings.json"))?;
        settings.save(&data_dir.join("settings.json"))?;
        let frames = FrameHub::start().await.map_err(|source| AppError::Io {
            what: "starting the frame server on 127.0.0.1".into(),
            source,
        })?;
        Ok(Core(Arc::new(Inner {
            data_dir: data_dir.to_path_buf(),
            tokens: TokenStore::new(data_dir, use_keyring),
            summaries: SummaryStore::new(data_dir),
            export_dir: Mutex::new(data_dir.join("exports")),
            frames,
            emit: Mutex::new(None),
            notify: Mutex::new(None),
            state: Mutex::new(State {
                settings,
                session: SessionView::SignedOut,
                server_url: None,
                client: None,
                generation: 0,
                online: false,
                contacts: Vec::new(),
                call: None,
                preview: None,
                ringer: None,
                stats: CallStats::new("", ""),
            }),
            embedded: tokio::sync::Mutex::new(None),
            session_lock: tokio::sync::Mutex::new(()),
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in this file; the state is still
        // consistent field by field, so carry on with it.
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where events go from now on.
    pub fn set_emitter(&self, emit: Emit) {
        if let Ok(mut e) = self.0.emit.lock() {
            *e = Some(emit);
        }
    }

    /// How OS notifications are shown.
    pub fn set_notifier(&self, notify: Notify) {
        if let Ok(mut n) = self.0.notify.lock() {
            *n = Some(notify);
        }
    }

    fn emit(&self, ev: UiEvent) {
        let emit = self.0.emit.lock().ok().and_then(|e| e.clone());
        if let Some(f) = emit {
            f(ev);
        }
    }

    fn emit_error(&self, e: &AppError) {
        self.emit(UiEvent::Error { error: e.to_ipc() });
    }

    /// The frame server.
    pub fn frames(&self) -> &FrameHub {
        &self.0.frames
    }

    /// Frame delivery figures.
    pub fn frame_stats(&self) -> FrameStats {
        self.0.frames.stats()
    }

    /// Everything the UI shows, now.
    pub fn snapshot(&self) -> AppStateView {
        let s = self.state();
        AppStateView {
            session: s.session.clone(),
            server_url: s.server_url.clone(),
            embedded: s.settings.server.is_none(),
            online: s.online,
            contacts: s.contacts.clone(),
            call: s.call.clone(),
            frames: self.0.frames.endpoint(),
            devices: s.settings.devices.clone(),
        }
    }

    fn emit_session(&self) {
        let (session, server_url, embedded) = {
            let s = self.state();
            (
                s.session.clone(),
                s.server_url.clone(),
                s.settings.server.is_none(),
            )
        };
        self.emit(UiEvent::Session {
            session,
            server_url,
            embedded,
        });
    }

    fn save_settings(&self) -> Result<()> {
        let settings = self.state().settings.clone();
        settings.save(&self.0.data_dir.join("settings.json"))
    }

    /// First step after launch: the embedded default signs in by itself; a remote server signs
    /// in with the kept token, or waits for the user.
    pub async fn startup(&self) {
        let _guard = self.0.session_lock.lock().await;
        if let Err(e) = self.startup_locked().await {
            self.state().session = SessionView::SignedOut;
            self.emit_session();
            self.emit_error(&e);
        }
    }

    async fn startup_locked(&self) -> Result<()> {
        let remote = self.state().settings.server.clone();
        match remote {
            None => {
                self.state().session = SessionView::SigningIn;
                self.emit_session();
                let url = self.ensure_embedded().await?;
                let username = {
                    let s = self.state();
                    s.settings.username.clone().unwrap_or_else(local_username)
                };
                let token = {
                    let e = self.0.embedded.lock().await;
                    match e.as_ref() {
                        Some(e) => e.local_token(&username).await?,
                        None => return Err(AppError::State("the embedded server is not running")),
                    }
                };
                self.start_client(url, username, token).await
            }
            Some(server) => {
                let url = ServerUrl::parse(&server)?;
                self.state().server_url = Some(server.clone());
                let user = self.state().settings.username.clone();
                let token = user
                    .as_ref()
                    .and_then(|u| self.0.tokens.get(&server, u).map(|t| (u.clone(), t)));
                match token {
                    Some((username, token)) => {
                        self.state().session = SessionView::SigningIn;
                        self.emit_session();
                        self.start_client(url, username, token).await
                    }
                    None => {
                        self.state().session = SessionView::SignedOut;
                        self.emit_session();
                        Ok(())
                    }
                }
            }
        }
    }

    async fn ensure_embedded(&self) -> Result<ServerUrl> {
        let mut e = self.0.embedded.lock().await;
        if let Some(e) = e.as_ref() {
            return Ok(e.url.clone());
        }
        let started = Embedded::start(&self.0.data_dir.join("embedded.sqlite")).await?;
        let url = started.url.clone();
        *e = Some(started);
        self.state().server_url = Some(url.to_string());
        Ok(url)
    }

    /// Signs in with a password (or registers), keeps the token, connects.
    pub async fn sign_in(&self, username: &str, password: &str, register: bool) -> Result<()> {
        let username = username.trim();
        if username.is_empty() || username.len() > MAX_USERNAME {
            return Err(AppError::Invalid(format!(
                "a username has 1 to {MAX_USERNAME} characters"
            )));
        }
        if password.len() > MAX_PASSWORD {
            return Err(AppError::Invalid(format!(
                "a password has at most {MAX_PASSWORD} characters"
            )));
        }
        let _guard = self.0.session_lock.lock().await;
        self.stop_client().await;
        let remote = self.state().settings.server.clone();
        let url = match remote {
            Some(s) => ServerUrl::parse(&s)?,
            None => self.ensure_embedded().await?,
        };
        self.state().session = SessionView::SigningIn;
        self.emit_session();
        let session = if register {
            signal::register(&url, username, password).await
        } else {
            signal::login(&url, username, password).await
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                self.state().session = SessionView::SignedOut;
                self.emit_session();
                return Err(e.into());
            }
        };
        if let Err(e) = self
            .0
            .tokens
            .put(&url.to_string(), &session.username, &session.token)
        {
            tracing::warn!(error = %e, "could not keep the sign-in token");
        }
        self.state().settings.username = Some(session.username.clone());
        self.save_settings()?;
        self.start_client(url, session.username, session.token)
            .await
            .inspect_err(|_| {
                self.state().session = SessionView::SignedOut;
                self.emit_session();
            })
    }

    /// Signs out: ends any call, revokes the token on the server, forgets it here.
    pub async fn sign_out(&self) -> Result<()> {
        let _guard = self.0.session_lock.lock().await;
        let client = self.state().client.take();
        if let Some(c) = client {
            c.handle.shutdown().await;
            if let Err(e) = signal::logout(&c.server, &c.token).await {
                tracing::info!(error = %e, "logout on the server");
            }
            self.0.tokens.remove(&c.server.to_string(), &c.username)?;
        }
        {
            let mut s = self.state();
            s.session = SessionView::SignedOut;
            s.contacts.clear();
            s.call = None;
            s.online = false;
            s.settings.username = None;
        }
        self.save_settings()?;
        self.emit_session();
        self.emit(UiEvent::Contacts {
            contacts: Vec::new(),
        });
        Ok(())
    }

    /// Points the app at a remote server (`Some(url)`) or back at the embedded one (`None`).
    pub async fn set_server(&self, url: Option<String>) -> Result<()> {
        let url = match url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => Some(check_server_url(u)?),
        };
        {
            let _guard = self.0.session_lock.lock().await;
            self.stop_client().await;
            let mut s = self.state();
            s.settings.server = url.clone();
            s.server_url = url.clone();
            s.session = SessionView::SignedOut;
            s.contacts.clear();
        }
        self.save_settings()?;
        self.emit(UiEvent::Contacts {
            contacts: Vec::new(),
        });
        self.startup().await;
        Ok(())
    }

    async fn stop_client(&self) {
        let client = self.state().client.take();
        if let Some(c) = client {
            c.handle.shutdown().await;
        }
        let mut s = self.state();
        s.online = false;
        s.call = None;
    }

    async fn start_client(&self, url: ServerUrl, username: String, token: String) -> Result<()> {
        let mut cfg = ClientConfig::new(url.clone(), &username, "");
        cfg.token = Some(token.clone());
        cfg.register = false;
        let devices = {
            let s = self.state();
            cfg.device = s.settings.device_id.clone();
            s.settings.devices.clone()
        };
        let devices = self.use_devices(&devices)?;
        cfg.media.video = devices::video_input(&devices.camera)?;
        cfg.media.audio = devices::audio_input(&devices.microphone)?;
        let (handle, mut events) = match dyad_call::start(cfg).await {
            Ok(x) => x,
            Err(e) => {
                let e = AppError::from(e);
                if e.to_ipc().kind == ErrorKind::SessionExpired {
                    let _ = self.0.tokens.remove(&url.to_string(), &username);
                }
                return Err(e);
            }
        };
        if let Some(sink) = devices::speaker(&devices.speaker) {
            handle.set_audio_sink(sink);
        } else {
            handle.set_audio_sink(Box::new(CountingSink::default()));
        }
        let generation = {
            let mut s = self.state();
            s.generation += 1;
            s.generation
        };
        let me = self.clone();
        let pump = tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                me.on_event(generation, ev);
            }
            me.on_client_gone(generation);
        });
        let mut remote = handle.remote_video();
        let frames = self.0.frames.clone();
        let remote_task = tokio::spawn(async move {
            while remote.changed().await.is_ok() {
                let pic = remote
                    .borrow_and_update()
                    .as_ref()
                    .map(|d| Picture::remote(d));
                if let Some(p) = pic {
                    frames.set_remote(Some(p));
                }
            }
        });
        let mut local = handle.self_view();
        let frames = self.0.frames.clone();
        let local_task = tokio::spawn(async move {
            while local.changed().await.is_ok() {
                let pic = local.borrow_and_update().clone().map(Picture::local);
                frames.set_local(pic);
            }
        });
        let mut s = self.state();
        s.client = Some(Client {
            handle,
            username: username.clone(),
            token,
            server: url.clone(),
            tasks: vec![pump, remote_task, local_task],
        });
        s.server_url = Some(url.to_string());
        Ok(())
    }

    fn on_client_gone(&self, generation: u64) {
        let mut s = self.state();
        if s.generation != generation || s.client.is_none() {
            return;
        }
        s.client = None;
        s.session = SessionView::SignedOut;
        s.online = false;
        drop(s);
        self.emit_session();
    }

    fn with_client<T>(&self, f: impl FnOnce(&ClientHandle) -> T) -> Result<T> {
        let s = self.state();
        let c = s.client.as_ref().ok_or(AppError::NotSignedIn)?;
        Ok(f(&c.handle))
    }

    /// Applies one engine event to the state and tells the UI.
    fn on_event(&self, generation: u64, ev: CallEvent) {
        if self.state().generation != generation {
            return;
        }
        match ev {
            CallEvent::SignedIn { username, .. } => {
                {
                    let mut s = self.state();
                    s.session = SessionView::SignedIn { username };
                    s.online = true;
                }
                self.emit_session();
                self.emit(UiEvent::Connection { online: true });
            }
            CallEvent::SignallingLost | CallEvent::SignallingRestored => {
                let online = matches!(ev, CallEvent::SignallingRestored);
                self.state().online = online;
                self.emit(UiEvent::Connection { online });
            }
            CallEvent::Contacts(list) => {
                let embedded = self.state().settings.server.is_none();
                let contacts: Vec<ContactView> = list
                    .into_iter()
                    .map(|c| ContactView {
                        echo: embedded && c.username == ECHO_USER,
                        username: c.username,
                        presence: presence(c.presence),
                    })
                    .collect();
                self.state().contacts = contacts.clone();
                self.emit(UiEvent::Contacts { contacts });
            }
            CallEvent::Presence {
                username,
                presence: p,
            } => {
                let contacts = {
                    let mut s = self.state();
                    for c in s.contacts.iter_mut().filter(|c| c.username == username) {
                        c.presence = presence(p);
                    }
                    s.contacts.clone()
                };
                self.emit(UiEvent::Contacts { contacts });
            }
            CallEvent::Dialling { call_id, peer } => {
                self.stop_preview();
                self.state().stats = CallStats::new(&call_id, &peer);
                self.set_call(CallView {
                    call_id,
                    peer,
                    outgoing: true,
                    phase: CallPhase::Dialling,
                    connected_at_ms: None,
                    mic_muted: false,
                    camera_off: false,
                });
            }
            CallEvent::Incoming { call_id, from } => {
                self.state().stats = CallStats::new(&call_id, &from);
                self.set_call(CallView {
                    call_id,
                    peer: from.clone(),
                    outgoing: false,
                    phase: CallPhase::Incoming,
                    connected_at_ms: None,
                    mic_muted: false,
                    camera_off: false,
                });
                let speaker = self.state().settings.devices.speaker.clone();
                let ringer = devices::Ringer::start(&speaker);
                self.state().ringer = ringer;
                let notify = self.0.notify.lock().ok().and_then(|n| n.clone());
                if let Some(n) = notify {
                    n("Incoming call", &format!("{from} is calling you"));
                }
            }
            CallEvent::RemoteRinging { .. } => self.update_call(|c| c.phase = CallPhase::Ringing),
            CallEvent::Connecting { .. } => {
                self.stop_preview();
                self.update_call(|c| c.phase = CallPhase::Connecting);
            }
            CallEvent::Connected { .. } => self.update_call(|c| {
                c.phase = CallPhase::Connected;
                c.connected_at_ms.get_or_insert_with(now_ms);
            }),
            CallEvent::FirstRemoteFrame { after_answer, .. } => {
                tracing::info!(ms = after_answer.as_millis() as u64, "first remote frame");
            }
            CallEvent::Stats(snap) => {
                let ctx = Context {
                    local_camera_off: self.state().call.as_ref().is_some_and(|c| c.camera_off),
                    remote_camera_off: self.0.frames.remote_camera_off(),
                };
                let point = self.state().stats.push(*snap, ctx);
                self.emit(UiEvent::Stats {
                    point: Box::new(point),
                });
            }
            CallEvent::Ended {
                call_id, reason, ..
            } => {
                let call = {
                    let mut s = self.state();
                    s.ringer = None;
                    s.call.take()
                };
                self.0.frames.set_remote(None);
                self.0.frames.set_local(None);
                let (peer, outgoing, connected_at) = call
                    .map(|c| (c.peer, c.outgoing, c.connected_at_ms))
                    .unwrap_or_default();
                // Kept before the UI hears of the end: it reloads the history then.
                let summary = {
                    let mut s = self.state();
                    if s.stats.call_id == call_id {
                        summarize(&call_id, s.stats.points.make_contiguous())
                    } else {
                        None
                    }
                };
                if let Some(summary) = summary {
                    if let Err(e) = self.0.summaries.add(summary) {
                        tracing::warn!(error = %e, "could not keep the call's summary");
                    }
                }
                let duration_secs = connected_at
                    .map(|t| now_ms().saturating_sub(t) as f64 / 1000.0)
                    .unwrap_or(0.0);
                let (message, failed) = end_message(reason, &peer, outgoing);
                self.emit(UiEvent::Ended {
                    ended: CallEnded {
                        call_id,
                        peer,
                        reason: reason_code(reason),
                        message,
                        duration_secs,
                        failed,
                    },
                });
            }
            CallEvent::Error { code, message } => {
                let kind = match code.as_str() {
                    "video_source_failed" | "audio_source_failed" | "camera" | "media" => {
                        ErrorKind::Device
                    }
                    "invalid_state" | "unknown_call" | "duplicate_call" => ErrorKind::InvalidState,
                    "unknown_user" | "self_reference" | "invalid_field" => ErrorKind::InvalidInput,
                    "unauthorized" | "token_expired" => ErrorKind::SessionExpired,
                    _ => ErrorKind::Internal,
                };
                self.emit(UiEvent::Error {
                    error: IpcError { kind, message },
                });
            }
        }
    }

    fn set_call(&self, call: CallView) {
        self.state().call = Some(call.clone());
        self.emit(UiEvent::Call { call });
    }

    fn update_call(&self, f: impl FnOnce(&mut CallView)) {
        let call = {
            let mut s = self.state();
            let Some(c) = s.call.as_mut() else { return };
            f(c);
            let c = c.clone();
            if c.phase != CallPhase::Incoming {
                s.ringer = None;
            }
            c
        };
        self.emit(UiEvent::Call { call });
    }

    /// Calls `peer`.
    pub fn start_call(&self, peer: &str) -> Result<()> {
        let peer = peer.trim();
        if peer.is_empty() || peer.len() > MAX_USERNAME {
            return Err(AppError::Invalid("say who to call".into()));
        }
        if self.state().call.is_some() {
            return Err(AppError::State("you are already in a call"));
        }
        self.with_client(|c| c.dial(peer))??;
        Ok(())
    }

    /// Accepts the ringing call.
    pub fn accept_call(&self) -> Result<()> {
        match self.state().call.as_ref().map(|c| c.phase) {
            Some(CallPhase::Incoming) => {}
            _ => return Err(AppError::State("no call is ringing")),
        }
        self.stop_preview();
        self.with_client(|c| c.accept())??;
        Ok(())
    }

    /// Declines the ringing call.
    pub fn decline_call(&self) -> Result<()> {
        self.with_client(|c| c.reject())??;
        Ok(())
    }

    /// Hangs up or cancels.
    pub fn hang_up(&self) -> Result<()> {
        self.with_client(|c| c.hangup())??;
        Ok(())
    }

    /// Microphone off / on.
    pub fn set_mic_muted(&self, muted: bool) -> Result<()> {
        self.with_client(|c| c.mute_audio(muted))??;
        self.update_call(|c| c.mic_muted = muted);
        Ok(())
    }

    /// Camera off / on.
    pub fn set_camera_off(&self, off: bool) -> Result<()> {
        self.with_client(|c| c.mute_video(off))??;
        self.update_call(|c| c.camera_off = off);
        if off {
            self.0.frames.set_local(None);
        }
        Ok(())
    }

    /// Adds a contact.
    pub fn add_contact(&self, username: &str) -> Result<()> {
        let u = username.trim();
        if u.is_empty() || u.len() > MAX_USERNAME {
            return Err(AppError::Invalid(format!(
                "a username has 1 to {MAX_USERNAME} characters"
            )));
        }
        self.with_client(|c| c.add_contact(u))??;
        Ok(())
    }

    /// Removes a contact.
    pub fn remove_contact(&self, username: &str) -> Result<()> {
        self.with_client(|c| c.remove_contact(username.trim()))??;
        Ok(())
    }

    /// The devices and synthetic sources to pick from.
    pub fn list_devices(&self) -> DeviceList {
        devices::list()
    }

    /// Chooses devices; applied at once (in a call: without re-dialling).
    pub fn select_devices(&self, choice: DeviceChoice) -> Result<()> {
        let video = devices::video_input(&choice.camera)?;
        let audio = devices::audio_input(&choice.microphone)?;
        devices::check_speaker(&choice.speaker)?;
        let previewing = {
            let mut s = self.state();
            s.settings.devices = choice.clone();
            s.preview.is_some()
        };
        self.save_settings()?;
        let in_call = self.state().call.is_some();
        if in_call {
            self.with_client(|c| -> Result<()> {
                c.switch_video(video.clone())?;
                c.switch_audio(audio)?;
                match devices::speaker(&choice.speaker) {
                    Some(s) => c.set_audio_sink(s),
                    None => c.set_audio_sink(Box::new(CountingSink::default())),
                }
                Ok(())
            })??;
        }
        if previewing {
            self.stop_preview();
            self.start_preview()?;
        }
        Ok(())
    }

    /// The devices that will really be used for `want` (missing ones replaced by synthetic
    /// sources); remembered, so the pickers show what is in use.
    fn use_devices(&self, want: &DeviceChoice) -> Result<DeviceChoice> {
        let got = devices::effective(want);
        if &got != want {
            self.state().settings.devices = got.clone();
            self.save_settings()?;
        }
        Ok(got)
    }

    /// Starts the pre-join preview: self-view and the microphone level meter.
    pub fn start_preview(&self) -> Result<()> {
        if self.state().call.is_some() {
            return Ok(());
        }
        self.stop_preview();
        let devices = self.state().settings.devices.clone();
        let devices = self.use_devices(&devices)?;
        let video = devices::video_input(&devices.camera)?;
        let audio = devices::audio_input(&devices.microphone)?;
        let frames = self.0.frames.clone();
        let me = self.clone();
        let preview = Preview::start(
            video,
            audio,
            Box::new(move |f| frames.set_local(Some(Picture::local(f)))),
            Box::new(move |dbfs| me.emit(UiEvent::MicLevel { dbfs })),
        )?;
        self.state().preview = Some(preview);
        Ok(())
    }

    /// Stops the preview (the camera is free again).
    pub fn stop_preview(&self) {
        let p = self.state().preview.take();
        if p.is_some() {
            drop(p);
            self.0.frames.set_local(None);
        }
    }

    /// The call history, newest first.
    pub async fn history(&self) -> Result<Vec<HistoryRow>> {
        let (server, token, me) = {
            let s = self.state();
            let c = s.client.as_ref().ok_or(AppError::NotSignedIn)?;
            (c.server.clone(), c.token.clone(), c.username.clone())
        };
        let rows = signal::history(&server, &token).await?;
        let summaries = self.0.summaries.load().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "call summaries not shown");
            Vec::new()
        });
        Ok(rows
            .into_iter()
            .map(|r| {
                let mut row = history_row(&me, r);
                row.summary = summaries
                    .iter()
                    .rev()
                    .find(|s| s.call_id == row.call_id)
                    .cloned();
                row
            })
            .collect())
    }

    /// Where exports are written from now on (the app sets the Downloads folder).
    pub fn set_export_dir(&self, dir: PathBuf) {
        if let Ok(mut d) = self.0.export_dir.lock() {
            *d = dir;
        }
    }

    /// The current call's statistics so far (after a call: that call's, until the next one).
    pub fn call_stats(&self) -> Vec<StatsPoint> {
        self.state().stats.points.iter().cloned().collect()
    }

    /// Writes the current (or last) call's statistics to a file in the export folder.
    pub fn export_stats(&self, format: ExportFormat) -> Result<ExportResult> {
        let (points, peer) = {
            let s = self.state();
            (
                s.stats.points.iter().cloned().collect::<Vec<_>>(),
                s.stats.peer.clone(),
            )
        };
        let first = points.first().ok_or(AppError::State(
            "there are no call statistics to export yet",
        ))?;
        let (body, ext) = match format {
            ExportFormat::Json => (dyad_call::export::internals_json(&points, &peer), "json"),
            ExportFormat::Csv => (dyad_call::export::csv(&points), "csv"),
        };
        let dir = self
            .0
            .export_dir
            .lock()
            .map(|d| d.clone())
            .unwrap_or_else(|_| self.0.data_dir.join("exports"));
        let io = |source| AppError::Io {
            what: format!("writing statistics to {}", dir.display()),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        // dyad-stats-<peer>-<start, UTC, file-name safe>.<ext>; the peer is a checked username.
        let stamp: String = dyad_call::export::iso8601(first.snapshot.timestamp)
            .chars()
            .take(19)
            .filter(|c| c.is_ascii_alphanumeric() || *c == 'T')
            .collect();
        let safe_peer: String = peer
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(64)
            .collect();
        let path = dir.join(format!("dyad-stats-{safe_peer}-{stamp}.{ext}"));
        std::fs::write(&path, body.as_bytes()).map_err(io)?;
        Ok(ExportResult {
            path: path.display().to_string(),
            bytes: body.len() as u64,
            points: points.len().min(u32::MAX as usize) as u32,
        })
    }

    /// Ends everything (window closing).
    pub async fn shutdown(&self) {
        self.stop_preview();
        self.stop_client().await;
        if let Some(e) = self.0.embedded.lock().await.take() {
            e.shutdown().await;
        }
    }
}

fn presence(p: Presence) -> PresenceView {
    match p {
        Presence::Online => PresenceView::Online,
        Presence::InCall => PresenceView::InCall,
        Presence::Offline => PresenceView::Offline,
    }
}

fn reason_code(r: EndReason) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// What to tell the user when a call ends, and whether it is a failure.
pub fn end_message(r: EndReason, peer: &str, outgoing: bool) -> (String, bool) {
    match r {
        EndReason::UserHangup => ("Call ended.".into(), false),
        EndReason::Cancelled if outgoing => ("Call cancelled.".into(), false),
        EndReason::Cancelled => (format!("Missed call from {peer}."), false),
        EndReason::Rejected if outgoing => (format!("{peer} declined the call."), true),
        EndReason::Rejected => ("Call declined.".into(), false),
        EndReason::Busy => (format!("{peer} is in another call."), true),
        EndReason::InviteTimeout if outgoing => (format!("{peer} did not answer."), true),
        EndReason::InviteTimeout => (format!("Missed call from {peer}."), false),
        EndReason::Unavailable => (format!("{peer} is offline."), true),
        EndReason::IceFailed | EndReason::IceTimeout => (
            "Could not connect: no network path to the other side (a firewall or NAT blocks it)."
                .into(),
            true,
        ),
        EndReason::MediaFailed => (
            "The connection was lost: no media arrived for several seconds.".into(),
            true,
        ),
        EndReason::PeerDisconnected => (format!("{peer} went offline; the call ended."), true),
        EndReason::AnsweredElsewhere => ("Answered on another device.".into(), false),
        EndReason::RejectedElsewhere => ("Declined on another device.".into(), false),
        EndReason::Replaced => (
            "This account signed in on another window; the call moved there.".into(),
            true,
        ),
        _ => ("The call ended.".into(), true),
    }
}

/// One history row as the user reads it.
pub fn history_row(me: &str, r: dyad_proto::http::CallRecord) -> HistoryRow {
    let outgoing = r.caller == me;
    let peer = if outgoing { r.callee } else { r.caller };
    let duration_secs = match (r.answered_at_ms, r.ended_at_ms) {
        (Some(a), Some(e)) => e.saturating_sub(a) as f64 / 1000.0,
        _ => 0.0,
    };
    let reason = r.end_reason.as_deref().unwrap_or("");
    let outcome = if r.ended_at_ms.is_none() {
        Outcome::InProgress
    } else if r.answered_at_ms.is_some() || reason == "answered_elsewhere" {
        Outcome::Answered
    } else {
        match reason {
            "busy" => Outcome::Busy,
            "rejected" | "rejected_elsewhere" => Outcome::Declined,
            "cancelled" | "invite_timeout" if outgoing => Outcome::NoAnswer,
            "cancelled" | "invite_timeout" => Outcome::Missed,
            _ => Outcome::Failed,
        }
    };
    HistoryRow {
        call_id: r.call_id,
        peer,
        outgoing,
        outcome,
        started_at_ms: r.started_at_ms,
        duration_secs,
        summary: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyad_proto::http::CallRecord;

    fn rec(caller: &str, answered: bool, ended: bool, reason: &str) -> CallRecord {
        CallRecord {
            call_id: "c1".into(),
            caller: caller.into(),
            callee: if caller == "ann" { "bob" } else { "ann" }.into(),
            started_at_ms: 1_000,
            answered_at_ms: answered.then_some(2_000),
            ended_at_ms: ended.then_some(12_500),
            end_reason: ended.then(|| reason.to_string()),
            ended_by: None,
        }
    }

    #[test]
    fn history_outcomes_read_as_people_say_them() {
        let cases = [
            (
                rec("ann", true, true, "user_hangup"),
                Outcome::Answered,
                true,
            ),
            (rec("bob", false, true, "cancelled"), Outcome::Missed, false),
            (
                rec("bob", false, true, "invite_timeout"),
                Outcome::Missed,
                false,
            ),
            (
                rec("ann", false, true, "invite_timeout"),
                Outcome::NoAnswer,
                true,
            ),
            (rec("ann", false, true, "rejected"), Outcome::Declined, true),
            (
                rec("bob", false, true, "rejected"),
                Outcome::Declined,
                false,
            ),
            (rec("ann", false, true, "busy"), Outcome::Busy, true),
            (
                rec("ann", false, true, "unavailable"),
                Outcome::Failed,
                true,
            ),
            (rec("ann", false, true, "ice_failed"), Outcome::Failed, true),
            (rec("ann", false, false, ""), Outcome::InProgress, true),
        ];
        for (r, want, outgoing) in cases {
            let row = history_row("ann", r.clone());
            assert_eq!(row.outcome, want, "{r:?}");
            assert_eq!(row.outgoing, outgoing, "{r:?}");
            assert_ne!(row.peer, "ann");
        }
        assert_eq!(
            history_row("ann", rec("ann", true, true, "user_hangup")).duration_secs,
            10.5
        );
    }

    #[test]
    fn end_messages_name_the_peer_and_flag_failures() {
        let (m, failed) = end_message(EndReason::Busy, "bob", true);
        assert_eq!((m.as_str(), failed), ("bob is in another call.", true));
        let (m, failed) = end_message(EndReason::UserHangup, "bob", true);
        assert_eq!((m.as_str(), failed), ("Call ended.", false));
        assert!(end_message(EndReason::IceFailed, "bob", true).1);
        assert_eq!(reason_code(EndReason::InviteTimeout), "invite_timeout");
    }
}
