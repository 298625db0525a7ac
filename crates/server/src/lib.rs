//! `dyad-server`: the Dyad signalling server as a library (`dyad serve` and the desktop app embed
//! it). Accounts and tokens, contacts and presence, call routing with the call state machine
//! enforced, TURN REST credentials and an embedded STUN/TURN server.
//!
//! It must never depend on `dyad-call`, `dyad-media` or Tauri, read the clock inside logic (the
//! router and credential code take `now`), or panic on anything a client sends.

pub mod accept;
pub mod config;
pub mod embedded;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod guest;
pub mod http;
pub mod hub;
pub mod nat_test;
pub mod router;
pub mod store;
pub mod throttle;
pub mod tls;
pub mod turn;
pub mod turn_guard;
pub mod turn_tcp;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use config::ServerConfig;
pub use embedded::EmbeddedServer;
pub use error::{Result, ServerError};
pub use store::Store;

/// What every accepted TCP connection gets before it is served: `TCP_NODELAY`, so a frame sent
/// right after another to the same client leaves at once instead of waiting for the client's
/// delayed ACK (≈ 40 ms: candidates relayed right after `select_answer` arrived that late).
pub fn accepted(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
}

/// Calls the history shows with no end were live when the server last stopped (a crash, a kill,
/// a power cut). Those that were up come back in the router, both parties given the reconnect
/// grace to `resume` them (clients do on reconnecting); those that were still ringing end
/// `server_restart` now: their caller's invite is gone with the old process.
async fn restore_calls(store: &Store, hub: &mut hub::Hub) -> Result<()> {
    let now = hub::now_ms();
    let (mut restored, mut ended) = (0, 0);
    for call in store.open_calls().await? {
        match (call.answered, call.caller_device, call.callee_device) {
            (true, Some(caller_device), Some(callee_device)) => {
                hub.restore(
                    call.call_id,
                    router::Party::new(call.caller, caller_device),
                    router::Party::new(call.callee, callee_device),
                    call.relay_only,
                );
                restored += 1;
            }
            _ => {
                store
                    .call_ended(
                        (&call.caller, &call.call_id),
                        now,
                        dyad_proto::EndReason::ServerRestart,
                        None,
                    )
                    .await?;
                ended += 1;
            }
        }
    }
    if restored + ended > 0 {
        tracing::info!("restart: {restored} live calls restored, {ended} ringing calls ended");
    }
    Ok(())
}

/// Deletes expired login tokens every `every` until `stop` flips (they were never deleted).
async fn purge_tokens(store: Store, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = hub::now_ms() / 1000;
        match store.purge_expired(now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!("purged {n} expired tokens"),
            Err(e) => tracing::warn!(error = %e, "purging expired tokens"),
        }
    }
}

/// Serves HTTP and WebSocket (HTTPS/WSS when `config.tls` is set) on `listener` until `shutdown`
/// completes, then closes every connection and waits (bounded) for pending history rows to be
/// written.
pub async fn run(
    listener: TcpListener,
    store: Store,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (hub_tx, hub_rx) = mpsc::channel(4096);
    let (history_tx, history_rx) = mpsc::unbounded_channel();
    let mut hub = hub::Hub::new(config.clone(), history_tx);
    restore_calls(&store, &mut hub).await?;
    let hub_task = tokio::spawn(hub.run(hub_rx));
    let writer = tokio::spawn(hub::write_history(store.clone(), history_rx));
    let (stop_tx, stop_rx) = watch::channel(false);
    let tls = config.tls.clone();
    let turn_over_tls = config.turn_over_tls.clone();
    let admissions = accept::Admissions::new(config.admission);
    let timeouts = accept::Timeouts {
        head: Duration::from_millis(config.request_timeout_ms),
    };
    let throttle = Arc::new(std::sync::Mutex::new(throttle::Throttle::new(
        config.throttle,
    )));
    let (store_for_purge, purge_every) = (
        store.clone(),
        Duration::from_secs(config.purge_interval_secs.max(1)),
    );
    let state = http::AppState {
        store,
        config: Arc::new(config),
        hub: hub_tx,
        next_conn: Arc::new(AtomicU64::new(1)),
        throttle,
        live: Arc::default(),
        contacts_order: Arc::default(),
        shutdown: stop_rx.clone(),
    };
    let app = http::app(state);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    tokio::spawn(purge_tokens(store_for_purge, purge_every, stop_rx.clone()));
    match tls {
        Some(tls) => {
            let listener = tls::TlsListener::new(listener, &tls, turn_over_tls)?;
            accept::serve(listener, app, admissions, timeouts, stop_rx).await;
        }
        None => {
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(accepted);
            accept::serve(listener, app, admissions, timeouts, stop_rx).await;
        }
    }
    // Connections close on the stop signal; once they are gone the hub and then the history
    // writer run out of senders and finish.
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = hub_task.await;
        let _ = writer.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown: connections still open after 5 s");
    }
    Ok(())
}
