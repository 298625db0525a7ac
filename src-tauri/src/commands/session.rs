//! Sign in / out, the server in use, and the event channel.

use std::sync::Arc;

use tauri::ipc::Channel;
use tauri::State;

use super::CmdResult;
use crate::core::Core;
use crate::ipc::{AppStateView, UiEvent};

/// Everything the UI shows, now (after a load or reload).
#[tauri::command]
pub async fn app_state(core: State<'_, Core>) -> CmdResult<AppStateView> {
    Ok(core.snapshot())
}

/// Events from now on go to `events`.
#[tauri::command]
pub async fn subscribe(core: State<'_, Core>, events: Channel<UiEvent>) -> CmdResult<()> {
    core.set_emitter(Arc::new(move |ev| {
        if let Err(e) = events.send(ev) {
            tracing::debug!(error = %e, "event channel closed");
        }
    }));
    Ok(())
}

/// Signs in with a password, or creates the account (`register`).
#[tauri::command]
pub async fn sign_in(
    core: State<'_, Core>,
    username: String,
    password: String,
    register: bool,
) -> CmdResult<()> {
    core.sign_in(&username, &password, register).await
}

/// Signs out and forgets the token.
#[tauri::command]
pub async fn sign_out(core: State<'_, Core>) -> CmdResult<()> {
    core.sign_out().await
}

/// A remote server URL, or `null` for the embedded one.
#[tauri::command]
pub async fn set_server(core: State<'_, Core>, url: Option<String>) -> CmdResult<()> {
    core.set_server(url).await
}
