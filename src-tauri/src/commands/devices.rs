//! Device pickers and the pre-join preview.

use tauri::State;

use super::CmdResult;
use crate::core::Core;
use crate::ipc::{DeviceChoice, DeviceList};

/// Cameras, microphones, speakers and the synthetic sources.
#[tauri::command]
pub async fn list_devices(core: State<'_, Core>) -> CmdResult<DeviceList> {
    Ok(core.list_devices())
}

/// Uses these devices from now on (in a call: at once, without re-dialling).
#[tauri::command]
pub async fn select_devices(core: State<'_, Core>, choice: DeviceChoice) -> CmdResult<()> {
    core.select_devices(choice)
}

/// Starts the self-view and microphone meter.
#[tauri::command]
pub async fn start_preview(core: State<'_, Core>) -> CmdResult<()> {
    core.start_preview()
}

/// Stops the preview.
#[tauri::command]
pub async fn stop_preview(core: State<'_, Core>) -> CmdResult<()> {
    core.stop_preview();
    Ok(())
}
