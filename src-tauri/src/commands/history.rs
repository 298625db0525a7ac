//! Call history, frame-delivery figures and the network test.

use tauri::State;

use super::CmdResult;
use crate::core::Core;
use crate::ipc::{FrameStats, HistoryRow, NetworkReport};

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

/// "Test my network": what this network lets through to the server in use.
#[tauri::command]
pub async fn test_network(core: State<'_, Core>) -> CmdResult<NetworkReport> {
    core.test_network().await
}
