//! The embedded default: a signalling server on 127.0.0.1 with its database in the app's data
//! dir, and the echo bot that answers test calls with your own media.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use dyad_call::signal::ServerUrl;
use dyad_call::{ClientConfig, ClientHandle};
use dyad_server::{ServerConfig, Store};

use crate::error::Result;

/// The echo bot's username.
pub const ECHO_USER: &str = "echo";
/// The local account's token lifetime (a year: it only opens this machine's own server).
const LOCAL_TOKEN_TTL_SECS: u64 = 365 * 24 * 3600;

/// A running embedded server and echo bot; dropping it stops both.
#[derive(Debug)]
pub struct Embedded {
    /// Where it listens.
    pub url: ServerUrl,
    store: Store,
    echo: ClientHandle,
    _stop: tokio::sync::oneshot::Sender<()>,
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| crate::error::AppError::Io {
                what: "binding the embedded server to 127.0.0.1".into(),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| crate::error::AppError::Io {
                what: "embedded server address".into(),
                source,
            })?;
        let store = Store::open(db).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let s = store.clone();
        tokio::spawn(async move {
            let r = dyad_server::run(listener, s, ServerConfig::default(), async {
                let _ = stopped.await;
            })
            .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "embedded server stopped");
            }
        });
        let url = ServerUrl::parse(&format!("http://{addr}"))?;
        // The bot's password only guards this machine's own server; it is not a secret.
        let cfg = ClientConfig::new(url.clone(), ECHO_USER, "dyad echo bot password").echo();
        let (echo, mut events) = dyad_call::start(cfg).await?;
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        Ok(Embedded {
            url,
            store,
            echo,
            _stop: stop,
        })
    }

    /// A token for the local user `username`, creating the account (with a random password
    /// nobody needs: the token is what signs in) and the echo contact on first use.
    pub async fn local_token(&self, username: &str) -> Result<String> {
        let now = now_unix();
        match self
            .store
            .register(username, &crate::settings::random_hex(16), now)
            .await
        {
            Ok(()) => {}
            Err(dyad_server::ServerError::Proto(p))
                if p.code == dyad_proto::ErrorCode::UsernameTaken => {}
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = self.store.add_contact(username, ECHO_USER).await {
            tracing::debug!(error = %e, "echo contact");
        }
        let (token, _) = self
            .store
            .create_token(username, now, LOCAL_TOKEN_TTL_SECS)
            .await?;
        Ok(token)
    }

    /// Stops the echo bot (the server stops when this is dropped).
    pub async fn shutdown(&self) {
        self.echo.shutdown().await;
    }
}
