//! `dyad-app`: the Dyad desktop app, a thin Tauri shell over `dyad-call` (the call engine) and
//! `dyad-server` (the embedded signalling server). It holds IPC commands ([`commands`]), the
//! glue state ([`core`]), and the local WebSocket that carries decoded video to the page
//! ([`frames`]).
//!
//! It must never hold call or media logic of its own (that lives in `dyad-call`, headless and
//! tested there), block the UI thread on I/O, or let an error reach the page as anything but
//! `{kind, message}`.

pub mod commands;
pub mod core;
pub mod devices;
pub mod embedded;
pub mod error;
pub mod frames;
pub mod ipc;
#[cfg(test)]
mod proptests;
pub mod settings;
pub mod summary;

use std::path::PathBuf;
use std::sync::Arc;

use tauri::{Manager, Runtime};
use tauri_plugin_notification::NotificationExt;

use crate::core::Core;

/// True when a display server is reachable (GTK would panic without one).
pub fn have_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Where settings, tokens and the embedded server's database live: `$DYAD_DATA_DIR`, else the
/// platform's app data dir (`~/.local/share/app.dyad.desktop` on Linux).
fn data_dir<R: Runtime>(app: &tauri::App<R>) -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("DYAD_DATA_DIR") {
        return Ok(PathBuf::from(d));
    }
    Ok(app.path().app_data_dir()?)
}

/// Builds and runs the app on `builder` (tests pass a mock builder).
pub fn run_app<R: Runtime>(builder: tauri::Builder<R>) -> anyhow::Result<()> {
    let app = builder
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(tauri::generate_handler![
            commands::session::app_state,
            commands::session::subscribe,
            commands::session::sign_in,
            commands::session::sign_out,
            commands::session::set_server,
            commands::contacts::add_contact,
            commands::contacts::remove_contact,
            commands::contacts::set_privacy,
            commands::contacts::create_guest_link,
            commands::contacts::revoke_guest_link,
            commands::call::start_call,
            commands::call::accept_call,
            commands::call::decline_call,
            commands::call::hang_up,
            commands::call::set_mic_muted,
            commands::call::set_camera_off,
            commands::devices::list_devices,
            commands::devices::select_devices,
            commands::devices::set_audio_processing,
            commands::devices::start_preview,
            commands::devices::stop_preview,
            commands::history::call_history,
            commands::history::frame_stats,
            commands::history::test_network,
            commands::call::call_stats,
            commands::call::export_stats,
        ])
        .setup(|app| {
            let dir = data_dir(app)?;
            std::fs::create_dir_all(&dir)?;
            let core = tauri::async_runtime::block_on(Core::new(&dir, true))?;
            // Statistics exports go where the user finds downloads (DYAD_EXPORT_DIR for tests).
            if let Some(d) = std::env::var_os("DYAD_EXPORT_DIR")
                .map(PathBuf::from)
                .or_else(|| app.path().download_dir().ok())
            {
                core.set_export_dir(d);
            }
            let handle = app.handle().clone();
            core.set_notifier(Arc::new(move |title: &str, body: &str| {
                // On its own thread: without a session bus, D-Bus can take seconds to fail, and
                // the call's events must not wait for it.
                let (handle, title, body) = (handle.clone(), title.to_owned(), body.to_owned());
                std::thread::spawn(move || {
                    let shown = handle
                        .notification()
                        .builder()
                        .title(title)
                        .body(body)
                        .show();
                    if let Err(e) = shown {
                        tracing::info!(error = %e, "OS notification not shown");
                    }
                });
            }));
            app.manage(core.clone());
            tauri::async_runtime::spawn(async move { core.startup().await });
            Ok(())
        })
        .build(tauri::generate_context!("../tauri.conf.json"))?;
    app.run(|handle, event| {
        if let tauri::RunEvent::ExitRequested { .. } = event {
            if let Some(core) = handle.try_state::<Core>() {
                // Hang up and stop the embedded server, but never hold the window open for it.
                let core = core.inner().clone();
                tauri::async_runtime::block_on(async move {
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(3), core.shutdown())
                            .await;
                });
            }
        }
    });
    Ok(())
}

/// The binary's entry: logging, the no-display check, then the app.
pub fn main_entry() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,webrtc=off,webrtc_ice=off,webrtc_dtls=off,webrtc_srtp=off,webrtc_sctp=off,webrtc_mdns=off,turn=off".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();
    if !have_display() {
        eprintln!(
            "dyad-app: no display (DISPLAY and WAYLAND_DISPLAY are unset); run `dyad call` for a headless call, or start the app under a desktop or xvfb-run."
        );
        std::process::exit(2);
    }
    run_app(tauri::Builder::default())
}
