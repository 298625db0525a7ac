//! Which server (the embedded default or a remote one), signing in and out, and the client that
//! holds the session.

use super::*;

impl Core {
    /// First step after launch: the embedded default signs in by itself; a remote server signs
    /// in with the kept token, or waits for the user.
    pub async fn startup(&self) {
        let _guard = self.0.session_lock.lock().await;
        if let Err(e) = self.startup_locked().await {
            self.state().session = SessionView::SignedOut;
            self.emit_session();
            self.emit_error(&e);
        }
    }

    pub(super) async fn startup_locked(&self) -> Result<()> {
        let remote = self.state().settings.server.clone();
        match remote {
            None => {
                self.state().session = SessionView::SigningIn;
                self.emit_session();
                let url = self.ensure_embedded().await?;
                let username = {
                    let s = self.state();
                    s.settings.username.clone().unwrap_or_else(local_username)
                };
                let token = {
                    let e = self.0.embedded.lock().await;
                    match e.as_ref() {
                        Some(e) => e.local_token(&username).await?,
                        None => return Err(AppError::State("the embedded server is not running")),
                    }
                };
                self.start_client(url, username, token).await
            }
            Some(server) => {
                let url = ServerUrl::parse(&server)?;
                self.state().server_url = Some(server.clone());
                let user = self.state().settings.username.clone();
                let token = user
                    .as_ref()
                    .and_then(|u| self.0.tokens.get(&server, u).map(|t| (u.clone(), t)));
                match token {
                    Some((username, token)) => {
                        self.state().session = SessionView::SigningIn;
                        self.emit_session();
                        self.start_client(url, username, token).await
                    }
                    None => {
                        self.state().session = SessionView::SignedOut;
                        self.emit_session();
                        Ok(())
                    }
                }
            }
        }
    }

    pub(super) async fn ensure_embedded(&self) -> Result<ServerUrl> {
        let mut e = self.0.embedded.lock().await;
        if let Some(e) = e.as_ref() {
            return Ok(e.url.clone());
        }
        let started = Embedded::start(&self.0.data_dir.join("embedded.sqlite")).await?;
        let url = started.url.clone();
        *e = Some(started);
        self.state().server_url = Some(url.to_string());
        Ok(url)
    }

    /// Signs in with a password (or registers), keeps the token, connects.
    pub async fn sign_in(&self, username: &str, password: &str, register: bool) -> Result<()> {
        let username = username.trim();
        if username.is_empty() || username.len() > MAX_USERNAME {
            return Err(AppError::Invalid(format!(
                "a username has 1 to {MAX_USERNAME} characters"
            )));
        }
        if password.len() > MAX_PASSWORD {
            return Err(AppError::Invalid(format!(
                "a password has at most {MAX_PASSWORD} characters"
            )));
        }
        let _guard = self.0.session_lock.lock().await;
        self.stop_client().await;
        let remote = self.state().settings.server.clone();
        let url = match remote {
            Some(s) => ServerUrl::parse(&s)?,
            None => self.ensure_embedded().await?,
        };
        self.state().session = SessionView::SigningIn;
        self.emit_session();
        let session = if register {
            signal::register(&url, username, password).await
        } else {
            signal::login(&url, username, password).await
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                self.state().session = SessionView::SignedOut;
                self.emit_session();
                return Err(e.into());
            }
        };
        if let Err(e) = self
            .0
            .tokens
            .put(&url.to_string(), &session.username, &session.token)
        {
            tracing::warn!(error = %e, "could not keep the sign-in token");
        }
        self.state().settings.username = Some(session.username.clone());
        self.save_settings()?;
        self.start_client(url, session.username, session.token)
            .await
            .inspect_err(|_| {
                self.state().session = SessionView::SignedOut;
                self.emit_session();
            })
    }

    /// Signs out: ends any call, revokes the token on the server, forgets it here.
    pub async fn sign_out(&self) -> Result<()> {
        let _guard = self.0.session_lock.lock().await;
        let client = self.state().client.take();
        if let Some(c) = client {
            c.handle.shutdown().await;
            if let Err(e) = signal::logout(&c.server, &c.token).await {
                tracing::info!(error = %e, "logout on the server");
            }
            self.0.tokens.remove(&c.server.to_string(), &c.username)?;
        }
        {
            let mut s = self.state();
            s.session = SessionView::SignedOut;
            s.contacts.clear();
            s.call = None;
            s.online = false;
            s.settings.username = None;
        }
        self.save_settings()?;
        self.emit_session();
        self.emit(UiEvent::Contacts {
            contacts: Vec::new(),
        });
        Ok(())
    }

    /// The server stopped accepting our token and there is no password to sign in again with:
    /// forget the token and go back to the sign-in screen with the reason (not "Reconnecting…"
    /// for ever).
    pub(super) async fn session_expired(&self) {
        let _guard = self.0.session_lock.lock().await;
        let client = self.state().client.take();
        if let Some(c) = client {
            c.handle.shutdown().await;
            if let Err(e) = self.0.tokens.remove(&c.server.to_string(), &c.username) {
                tracing::warn!(error = %e, "stored token not removed");
            }
        }
        {
            let mut s = self.state();
            s.session = SessionView::SignedOut;
            s.contacts.clear();
            s.call = None;
            s.online = false;
        }
        self.emit_session();
        self.emit(UiEvent::Contacts {
            contacts: Vec::new(),
        });
        self.emit(UiEvent::Error {
            error: IpcError {
                kind: ErrorKind::SessionExpired,
                message: "Your session has expired: sign in again.".into(),
            },
        });
    }

    /// Points the app at a remote server (`Some(url)`) or back at the embedded one (`None`).
    pub async fn set_server(&self, url: Option<String>) -> Result<()> {
        let url = match url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => Some(check_server_url(u)?),
        };
        {
            let _guard = self.0.session_lock.lock().await;
            self.stop_client().await;
            let mut s = self.state();
            s.settings.server = url.clone();
            s.server_url = url.clone();
            s.session = SessionView::SignedOut;
            s.contacts.clear();
        }
        self.save_settings()?;
        self.emit(UiEvent::Contacts {
            contacts: Vec::new(),
        });
        self.startup().await;
        Ok(())
    }

    pub(super) async fn stop_client(&self) {
        let client = self.state().client.take();
        if let Some(c) = client {
            c.handle.shutdown().await;
        }
        let mut s = self.state();
        s.online = false;
        s.call = None;
    }

    pub(super) async fn start_client(
        &self,
        url: ServerUrl,
        username: String,
        token: String,
    ) -> Result<()> {
        let mut cfg = ClientConfig::new(url.clone(), &username, "");
        cfg.token = Some(token.clone());
        cfg.register = false;
        let devices = {
            let s = self.state();
            cfg.device = s.settings.device_id.clone();
            cfg.media.processing = s.settings.audio_processing.into();
            s.settings.devices.clone()
        };
        let devices = self.use_devices(&devices)?;
        cfg.media.video = devices::video_input(&devices.camera)?;
        let mic = devices::audio_input(&devices.microphone)?;
        cfg.media.audio = mic.input;
        cfg.media.microphone_id = mic.id;
        let (handle, mut events) = match dyad_call::start(cfg).await {
            Ok(x) => x,
            Err(e) => {
                let e = AppError::from(e);
                if e.to_ipc().kind == ErrorKind::SessionExpired {
                    let _ = self.0.tokens.remove(&url.to_string(), &username);
                }
                return Err(e);
            }
        };
        if let Some(sink) = devices::speaker(&devices.speaker) {
            handle.set_audio_sink(sink);
        } else {
            handle.set_audio_sink(Box::new(CountingSink::default()));
        }
        let generation = {
            let mut s = self.state();
            s.generation += 1;
            s.generation
        };
        let me = self.clone();
        let pump = tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                me.on_event(generation, ev);
            }
            me.on_client_gone(generation);
        });
        let mut remote = handle.remote_video();
        let frames = self.0.frames.clone();
        let remote_task = tokio::spawn(async move {
            while remote.changed().await.is_ok() {
                // `None` when a call ends: the engine clears the picture once its decoder stopped.
                let pic = remote
                    .borrow_and_update()
                    .as_ref()
                    .map(|d| Picture::remote(d));
                frames.set_remote(pic);
            }
        });
        let mut local = handle.self_view();
        let frames = self.0.frames.clone();
        let local_task = tokio::spawn(async move {
            while local.changed().await.is_ok() {
                let pic = local.borrow_and_update().clone().map(Picture::local);
                frames.set_local(pic);
            }
        });
        let mut s = self.state();
        s.client = Some(Client {
            handle,
            username: username.clone(),
            token,
            server: url.clone(),
            tasks: vec![pump, remote_task, local_task],
        });
        s.server_url = Some(url.to_string());
        Ok(())
    }

    pub(super) fn on_client_gone(&self, generation: u64) {
        let mut s = self.state();
        if s.generation != generation || s.client.is_none() {
            return;
        }
        s.client = None;
        s.session = SessionView::SignedOut;
        s.online = false;
        drop(s);
        self.emit_session();
    }
}
