//! Tauri build step: reads the root `tauri.conf.json` and declares the app's own IPC commands so
//! that `capabilities/*.json` can grant them one by one (least privilege).

/// Every command in `src/commands/`; the capability files grant them per window.
const COMMANDS: &[&str] = &[
    "app_state",
    "subscribe",
    "sign_in",
    "sign_out",
    "set_server",
    "add_contact",
    "remove_contact",
    "set_privacy",
    "start_call",
    "accept_call",
    "decline_call",
    "hang_up",
    "set_mic_muted",
    "set_camera_off",
    "list_devices",
    "select_devices",
    "set_audio_processing",
    "start_preview",
    "stop_preview",
    "call_history",
    "frame_stats",
    "call_stats",
    "export_stats",
    "create_guest_link",
    "revoke_guest_link",
    "test_network",
];

fn main() {
    let attributes = tauri_build::Attributes::new()
        .config_path("../tauri.conf.json")
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        // A build script reports by failing; the message names the broken file.
        panic!("tauri-build: {e:#}");
    }
}
