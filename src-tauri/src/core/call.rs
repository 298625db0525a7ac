//! Calling, answering, muting, contacts, devices and the pre-join preview.

use super::*;

impl Core {
    /// Calls `peer`.
    pub fn start_call(&self, peer: &str) -> Result<()> {
        let peer = peer.trim();
        if peer.is_empty() || peer.len() > MAX_USERNAME {
            return Err(AppError::Invalid("say who to call".into()));
        }
        if self.state().call.is_some() {
            return Err(AppError::State("you are already in a call"));
        }
        self.with_client(|c| c.dial(peer))??;
        Ok(())
    }

    /// Accepts the ringing call.
    pub fn accept_call(&self) -> Result<()> {
        match self.state().call.as_ref().map(|c| c.phase) {
            Some(CallPhase::Incoming) => {}
            _ => return Err(AppError::State("no call is ringing")),
        }
        self.stop_preview();
        self.with_client(|c| c.accept())??;
        Ok(())
    }

    /// Declines the ringing call.
    pub fn decline_call(&self) -> Result<()> {
        self.with_client(|c| c.reject())??;
        Ok(())
    }

    /// Hangs up or cancels.
    pub fn hang_up(&self) -> Result<()> {
        self.with_client(|c| c.hangup())??;
        Ok(())
    }

    /// Microphone off / on.
    pub fn set_mic_muted(&self, muted: bool) -> Result<()> {
        self.with_client(|c| c.mute_audio(muted))??;
        self.update_call(|c| c.mic_muted = muted);
        Ok(())
    }

    /// Camera off / on.
    pub fn set_camera_off(&self, off: bool) -> Result<()> {
        self.with_client(|c| c.mute_video(off))??;
        self.update_call(|c| c.camera_off = off);
        if off {
            self.0.frames.set_local(None);
        }
        Ok(())
    }

    /// Asks someone to be a contact, or accepts their request.
    pub fn add_contact(&self, username: &str) -> Result<()> {
        let u = username.trim();
        if u.is_empty() || u.len() > MAX_USERNAME {
            return Err(AppError::Invalid(format!(
                "a username has 1 to {MAX_USERNAME} characters"
            )));
        }
        self.with_client(|c| c.add_contact(u))??;
        Ok(())
    }

    /// Whether people who are not contacts may call us (their calls are relayed).
    pub fn set_privacy(&self, anyone_may_call: bool) -> Result<()> {
        self.with_client(|c| c.set_privacy(anyone_may_call))??;
        Ok(())
    }

    /// Removes a contact, or withdraws or declines a request.
    pub fn remove_contact(&self, username: &str) -> Result<()> {
        self.with_client(|c| c.remove_contact(username.trim()))??;
        Ok(())
    }

    /// The devices and synthetic sources to pick from.
    pub fn list_devices(&self) -> DeviceList {
        devices::list()
    }

    /// Chooses devices; applied at once (in a call: without re-dialling).
    pub fn select_devices(&self, choice: DeviceChoice) -> Result<()> {
        let video = devices::video_input(&choice.camera)?;
        let audio = devices::audio_input(&choice.microphone)?;
        devices::check_speaker(&choice.speaker)?;
        let previewing = {
            let mut s = self.state();
            s.settings.devices = choice.clone();
            s.preview.is_some()
        };
        self.save_settings()?;
        let in_call = self.state().call.is_some();
        if in_call {
            self.with_client(|c| -> Result<()> {
                c.switch_video(video.clone())?;
                match audio.input {
                    dyad_call::AudioInput::Microphone => c.switch_microphone(audio.id.clone())?,
                    other => c.switch_audio(other)?,
                }
                match devices::speaker(&choice.speaker) {
                    Some(s) => c.set_audio_sink(s),
                    None => c.set_audio_sink(Box::new(CountingSink::default())),
                }
                Ok(())
            })??;
        }
        if previewing {
            self.stop_preview();
            self.start_preview()?;
        }
        Ok(())
    }

    /// Switches parts of the microphone's processing on or off; remembered, and applied at once
    /// (in a call too).
    pub fn set_audio_processing(&self, choice: AudioProcessingChoice) -> Result<()> {
        self.state().settings.audio_processing = choice;
        self.save_settings()?;
        // Signed out, there is no client: the choice applies from the next sign-in.
        if self.state().client.is_some() {
            self.with_client(|c| c.set_audio_processing(choice.into()))??;
        }
        Ok(())
    }

    /// The devices that will really be used for `want` (missing ones replaced by synthetic
    /// sources); remembered, so the pickers show what is in use.
    pub(super) fn use_devices(&self, want: &DeviceChoice) -> Result<DeviceChoice> {
        let got = devices::effective(want);
        if &got != want {
            self.state().settings.devices = got.clone();
            self.save_settings()?;
        }
        Ok(got)
    }

    /// Starts the pre-join preview: self-view and the microphone level meter.
    pub fn start_preview(&self) -> Result<()> {
        if self.state().call.is_some() {
            return Ok(());
        }
        self.stop_preview();
        let devices = self.state().settings.devices.clone();
        let devices = self.use_devices(&devices)?;
        let video = devices::video_input(&devices.camera)?;
        let audio = devices::audio_input(&devices.microphone)?;
        let frames = self.0.frames.clone();
        let me = self.clone();
        let preview = Preview::start(
            video,
            audio,
            Box::new(move |f| frames.set_local(Some(Picture::local(f)))),
            Box::new(move |dbfs| me.emit(UiEvent::MicLevel { dbfs })),
        )?;
        self.state().preview = Some(preview);
        Ok(())
    }

    /// Stops the preview (the camera is free again).
    pub fn stop_preview(&self) {
        let p = self.state().preview.take();
        if p.is_some() {
            drop(p);
            self.0.frames.set_local(None);
        }
    }
}
