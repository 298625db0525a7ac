//! The embedded default: a signalling server on 127.0.0.1 for one machine — what the desktop
//! app runs when no server is configured, and what `dyad call` runs with no `--server`. It mints
//! tokens for local accounts straight from the store (the accounts get random passwords nobody
//! needs), including the echo contact's, so no password of this machine's server is ever fixed
//! or published. The echo bot itself is a call client: `dyad_call::echo`.

use base64::Engine;

use crate::config::ServerConfig;
use crate::error::{Result, ServerError};
use crate::store::Store;

/// The echo contact's username.
pub const ECHO_USER: &str = "echo";
/// Tokens for local accounts live this long (a year: they only open this machine's own server).
pub const LOCAL_TOKEN_TTL_SECS: u64 = 365 * 24 * 3600;

/// A running embedded server; [`EmbeddedServer::stop`] (or dropping it) stops it.
#[derive(Debug)]
pub struct EmbeddedServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    store: Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EmbeddedServer {
    /// Starts the server on `127.0.0.1:0` over `store`.
    pub async fn start(store: Store) -> Result<EmbeddedServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(ServerError::Io)?;
        let addr = listener.local_addr().map_err(ServerError::Io)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let s = store.clone();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = crate::run(listener, s, ServerConfig::default(), shutdown).await {
                tracing::error!(error = %e, "embedded server stopped");
            }
        });
        Ok(EmbeddedServer {
            url: format!("http://{addr}"),
            store,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The store it serves (for local accounts and contacts).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A token for the local account `username` valid from `now_unix`, creating the account
    /// (with a random password) on first use.
    pub async fn local_token(&self, username: &str, now_unix: u64) -> Result<String> {
        match self
            .store
            .register(username, &random_password()?, now_unix)
            .await
        {
            Ok(()) => {}
            Err(ServerError::Proto(p)) if p.code == dyad_proto::ErrorCode::UsernameTaken => {}
            Err(e) => return Err(e),
        }
        let (token, _) = self
            .store
            .create_token(username, now_unix, LOCAL_TOKEN_TTL_SECS)
            .await?;
        Ok(token)
    }

    /// A token for the echo contact (see [`ECHO_USER`]).
    pub async fn echo_token(&self, now_unix: u64) -> Result<String> {
        self.local_token(ECHO_USER, now_unix).await
    }

    /// Makes two local accounts accepted contacts of each other (idempotent): for benchmarks
    /// that run both ends of a call here.
    pub async fn make_contacts(&self, a: &str, b: &str) -> Result<()> {
        self.store.make_contacts(a, b).await
    }

    /// Makes the echo contact and `username` accepted contacts of each other (idempotent): the
    /// local user asked for it by starting the app, and the bot accepts everyone.
    pub async fn add_echo_contact(&self, username: &str) -> Result<()> {
        self.store.make_contacts(username, ECHO_USER).await
    }

    /// Stops the server and waits (bounded by the server's own drain) for it to finish.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// 16 random bytes, base64: a password no one types (the token is what signs in).
fn random_password() -> Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| ServerError::Store(format!("random: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}
