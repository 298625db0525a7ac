//! Calling, answering and in-call controls.

use tauri::State;

use dyad_call::quality::StatsPoint;

use super::CmdResult;
use crate::core::Core;
use crate::ipc::{ExportFormat, ExportResult};

/// Calls `peer`.
#[tauri::command]
pub async fn start_call(core: State<'_, Core>, peer: String) -> CmdResult<()> {
    core.start_call(&peer)
}

/// Accepts the ringing call.
#[tauri::command]
pub async fn accept_call(core: State<'_, Core>) -> CmdResult<()> {
    core.accept_call()
}

/// Declines the ringing call.
#[tauri::command]
pub async fn decline_call(core: State<'_, Core>) -> CmdResult<()> {
    core.decline_call()
}

/// Hangs up, or cancels a call that is still ringing.
#[tauri::command]
pub async fn hang_up(core: State<'_, Core>) -> CmdResult<()> {
    core.hang_up()
}

/// Microphone off / on.
#[tauri::command]
pub async fn set_mic_muted(core: State<'_, Core>, muted: bool) -> CmdResult<()> {
    core.set_mic_muted(muted)
}

/// Camera off / on.
#[tauri::command]
pub async fn set_camera_off(core: State<'_, Core>, off: bool) -> CmdResult<()> {
    core.set_camera_off(off)
}

/// The current call's statistics so far, one point per second (after a call: that call's).
#[tauri::command]
pub async fn call_stats(core: State<'_, Core>) -> CmdResult<Vec<StatsPoint>> {
    Ok(core.call_stats())
}

/// Writes the call's statistics as a webrtc-internals style JSON dump or CSV; returns where.
#[tauri::command]
pub async fn export_stats(core: State<'_, Core>, format: ExportFormat) -> CmdResult<ExportResult> {
    core.export_stats(format)
}
