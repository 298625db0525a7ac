//! Device pickers and the pre-join preview.

use tauri::State;

use super::CmdResult;
use crate::core::Core;
use crate::ipc::{AudioProcessingChoice, DeviceChoice, DeviceList};

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

/// Switches parts of the microphone's processing on or off (Settings → Sound); remembered,
/// and applied at once, in a call too.
#[tauri::command]
pub async fn set_audio_processing(
    core: State<'_, Core>,
    choice: AudioProcessingChoice,
) -> CmdResult<()> {
    core.set_audio_processing(choice)
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
