//! Call history and frame-delivery figures.

use tauri::State;

use super::CmdResult;
use crate::core::Core;
use crate::ipc::{FrameStats, HistoryRow};

/// The signed-in user's calls, newest first.
#[tauri::command]
pub async fn call_history(core: State<'_, Core>) -> CmdResult<Vec<HistoryRow>> {
    core.history().await
}

/// How frames reach the page (counts and capture → drawn latency).
#[tauri::command]
pub async fn frame_stats(core: State<'_, Core>) -> CmdResult<FrameStats> {
    Ok(core.frame_stats())
}
