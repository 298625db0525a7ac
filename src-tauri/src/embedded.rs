//! The embedded default: `dyad-server`'s [`EmbeddedServer`] on 127.0.0.1 with its database in
//! the app's data dir, and `dyad-call`'s [`EchoBot`] that answers test calls with your own
//! media (the same two that `dyad call` starts).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use dyad_call::echo::EchoBot;
use dyad_call::signal::ServerUrl;
use dyad_server::{EmbeddedServer, Store};

use crate::error::Result;

/// The echo bot's username.
pub use dyad_server::embedded::ECHO_USER;

/// A running embedded server and echo bot; [`Embedded::shutdown`] stops both.
#[derive(Debug)]
pub struct Embedded {
    /// Where it listens.
    pub url: ServerUrl,
    server: EmbeddedServer,
    echo: EchoBot,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Embedded {
    /// Starts the server on `127.0.0.1:0` over `db` (created if missing) and signs the echo bot in.
    pub async fn start(db: &Path) -> Result<Embedded> {
        let server = EmbeddedServer::start(Store::open(db).await?).await?;
        let url = ServerUrl::parse(&server.url)?;
        let token = server.echo_token(now_unix()).await?;
        let echo = EchoBot::start(url.clone(), ECHO_USER, token).await?;
        Ok(Embedded { url, server, echo })
    }

    /// A token for the local user `username`, creating the account and the echo contact on
    /// first use.
    pub async fn local_token(&self, username: &str) -> Result<String> {
        let token = self.server.local_token(username, now_unix()).await?;
        if let Err(e) = self.server.add_echo_contact(username).await {
            tracing::debug!(error = %e, "echo contact");
        }
        Ok(token)
    }

    /// Stops the echo bot and the server.
    pub async fn shutdown(self) {
        self.echo.shutdown().await;
        self.server.stop().await;
    }
}
