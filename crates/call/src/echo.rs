//! The echo contact: a client that answers every call at once and sends the caller's own video
//! and sound back, so a test call works with nobody on the other end (the "test call" of the big
//! apps). The desktop app and `dyad call` run it against their embedded server
//! (`dyad_server::EmbeddedServer`), signed in with a token minted from that server's store.

use crate::api::{ClientConfig, ClientHandle, CountingSink};
use crate::error::Result;
use crate::signal::ServerUrl;

/// A running echo bot; dropping the handle keeps it running until [`EchoBot::shutdown`].
#[derive(Debug)]
pub struct EchoBot {
    handle: ClientHandle,
}

impl EchoBot {
    /// Signs `username` in on `server` with `token` and starts answering.
    pub async fn start(server: ServerUrl, username: &str, token: String) -> Result<EchoBot> {
        let mut cfg = ClientConfig::new(server, username, "").echo();
        cfg.token = Some(token);
        cfg.register = false;
        // Its own device id: another connection can't take its place by guessing one.
        cfg.device = format!("echo-{}", random_suffix());
        let (handle, mut events) = crate::engine::start(cfg).await?;
        handle.set_audio_sink(Box::new(CountingSink::default()));
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        Ok(EchoBot { handle })
    }

    /// Ends any call and stops the bot.
    pub async fn shutdown(&self) {
        self.handle.shutdown().await;
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
