//! The app's state and the glue between IPC commands and `dyad-call`: who is signed in where,
//! the contact list, the call in progress, devices and the preview. Nothing here knows Tauri:
//! events leave through an [`Emit`] callback, OS notifications through a [`Notify`] callback, so
//! all of it runs in plain tests.
//!
//! | module | what |
//! | --- | --- |
//! | `session` | which server (the embedded default or a remote one), signing in and out, the client |
//! | `events` | the engine's events applied to the app's state and passed on to the UI |
//! | `call` | calling, answering, muting, contacts, devices and the pre-join preview |
//! | `stats` | the call's statistics as the app keeps them, and their export |
//! | `history` | the call history as the user reads it (outcomes, end messages) |

mod call;
mod events;
mod history;
mod session;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use dyad_call::engine::{CallEvent, CountingSink};
use dyad_call::quality::StatsPoint;
use dyad_call::signal::{self, ServerUrl};
use dyad_call::stats::MAX_HISTORY;
use dyad_call::{ClientConfig, ClientHandle};
use dyad_proto::{ContactState, EndReason, Presence};

use crate::devices::{self, Preview};
use crate::embedded::{Embedded, ECHO_USER};
use crate::error::{AppError, Result};
use crate::frames::{FrameHub, Picture};
use crate::ipc::{
    AppStateView, AudioProcessingChoice, CallEnded, CallPhase, CallView, ContactStateView,
    ContactView, DeviceChoice, DeviceList, ErrorKind, ExportFormat, ExportResult, FrameStats,
    HistoryRow, IpcError, Outcome, PresenceView, SessionView, UiEvent,
};
use crate::settings::{check_server_url, Settings, TokenStore};
use crate::summary::{summarize, SummaryStore};
use history::reason_code;
pub use history::{end_message, history_row};
use stats::CallStats;

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
    /// Held while "Test my network" runs: one at a time.
    network_test: tokio::sync::Mutex<()>,
}

struct State {
    settings: Settings,
    session: SessionView,
    server_url: Option<String>,
    client: Option<Client>,
    generation: u64,
    online: bool,
    contacts: Vec<ContactView>,
    anyone_may_call: bool,
    call: Option<CallView>,
    preview: Option<Preview>,
    ringer: Option<devices::Ringer>,
    /// The current (or last) call's statistics, oldest first, bounded by [`MAX_HISTORY`].
    stats: CallStats,
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
                anyone_may_call: false,
                call: None,
                preview: None,
                ringer: None,
                stats: CallStats::new("", ""),
            }),
            embedded: tokio::sync::Mutex::new(None),
            session_lock: tokio::sync::Mutex::new(()),
            network_test: tokio::sync::Mutex::new(()),
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
            anyone_may_call: s.anyone_may_call,
            call: s.call.clone(),
            frames: self.0.frames.endpoint(),
            devices: s.settings.devices.clone(),
            audio_processing: s.settings.audio_processing,
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

    fn with_client<T>(&self, f: impl FnOnce(&ClientHandle) -> T) -> Result<T> {
        let s = self.state();
        let c = s.client.as_ref().ok_or(AppError::NotSignedIn)?;
        Ok(f(&c.handle))
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
