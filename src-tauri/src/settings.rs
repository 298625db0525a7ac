//! Settings (a small JSON file in the app's data dir) and where the sign-in token is kept: the
//! OS keyring when one answers, otherwise a 0600 file beside the settings.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AppError, Result};
use crate::ipc::{AudioProcessingChoice, DeviceChoice};

/// Settings files larger than this are refused (they are a few hundred bytes).
pub const MAX_SETTINGS_BYTES: u64 = 64 * 1024;
/// Longest server URL accepted.
pub const MAX_URL_LEN: usize = 512;

/// What the app remembers between launches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// A remote `dyad serve`; `None` = the embedded server.
    pub server: Option<String>,
    /// The last signed-in user.
    pub username: Option<String>,
    /// This installation's device id.
    pub device_id: String,
    /// Chosen devices.
    pub devices: DeviceChoice,
    /// The microphone's processing (a file from before it existed: all on).
    pub audio_processing: AudioProcessingChoice,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: None,
            username: None,
            device_id: String::new(),
            devices: DeviceChoice {
                camera: "camera:0".into(),
                microphone: "mic:default".into(),
                speaker: "speaker:default".into(),
            },
            audio_processing: AudioProcessingChoice::default(),
        }
    }
}

impl Settings {
    /// Reads `path`; a missing file gives the defaults, a broken one an error that names it.
    pub fn load(path: &Path) -> Result<Settings> {
        let io = |source| AppError::Io {
            what: format!("settings {}", path.display()),
            source,
        };
        let mut s = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
            Err(e) => return Err(io(e)),
            Ok(m) if m.len() > MAX_SETTINGS_BYTES => {
                return Err(AppError::Invalid(format!(
                    "settings file {} is larger than {MAX_SETTINGS_BYTES} bytes",
                    path.display()
                )))
            }
            Ok(_) => {
                let raw = std::fs::read(path).map_err(io)?;
                serde_json::from_slice(&raw).map_err(|e| {
                    AppError::Invalid(format!(
                        "settings file {} is not valid: {e}",
                        path.display()
                    ))
                })?
            }
        };
        if s.device_id.is_empty() {
            s.device_id = format!("desktop-{}", random_hex(6));
        }
        Ok(s)
    }

    /// Writes atomically (temp file + rename) so a crash never leaves half a file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| AppError::Invalid(format!("settings: {e}")))?;
        write_private(path, &body)
    }
}

/// Checks a server URL typed by the user.
pub fn check_server_url(url: &str) -> Result<String> {
    let url = url.trim();
    if url.len() > MAX_URL_LEN {
        return Err(AppError::Invalid(format!(
            "the server address is longer than {MAX_URL_LEN} characters"
        )));
    }
    dyad_call::signal::ServerUrl::parse(url)?;
    Ok(url.trim_end_matches('/').to_string())
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    // getrandom only fails when the OS has no randomness source at all; then a time-derived
    // value is still unique enough for ids (secrets use `secret()` which propagates errors).
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8;
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes `body` to `path` with mode 0600 via a temp file and rename.
pub fn write_private(path: &Path, body: &[u8]) -> Result<()> {
    let io = |source| AppError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(body).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Where sign-in tokens live.
#[derive(Debug, Clone)]
pub struct TokenStore {
    file: PathBuf,
    use_keyring: bool,
}

/// Keyring service name.
const SERVICE: &str = "app.dyad.desktop";

impl TokenStore {
    /// Tokens for this data dir. `use_keyring: false` skips the OS keyring (tests).
    pub fn new(data_dir: &Path, use_keyring: bool) -> Self {
        Self {
            file: data_dir.join("tokens.json"),
            use_keyring,
        }
    }

    fn key(server: &str, user: &str) -> String {
        format!("{user}@{server}")
    }

    /// Keeps `token` for `user` on `server`. Returns where it went ("keyring" or "file").
    pub fn put(&self, server: &str, user: &str, token: &str) -> Result<&'static str> {
        let key = Self::key(server, user);
        if self.use_keyring {
            if let Ok(entry) = keyring::Entry::new(SERVICE, &key) {
                if entry.set_password(token).is_ok() {
                    // A stale copy in the file would outlive a sign-out from the keyring.
                    let _ = self.file_remove(&key);
                    return Ok("keyring");
                }
            }
        }
        let mut all = self.file_read();
        all.insert(key, token.to_string());
        let body = serde_json::to_vec(&all).map_err(|e| AppError::Invalid(e.to_string()))?;
        write_private(&self.file, &body)?;
        Ok("file")
    }

    /// The token for `user` on `server`, if one is kept.
    pub fn get(&self, server: &str, user: &str) -> Option<String> {
        let key = Self::key(server, user);
        if self.use_keyring {
            if let Ok(t) = keyring::Entry::new(SERVICE, &key).and_then(|e| e.get_password()) {
                return Some(t);
            }
        }
        self.file_read().remove(&key)
    }

    /// Forgets the token (sign out).
    pub fn remove(&self, server: &str, user: &str) -> Result<()> {
        let key = Self::key(server, user);
        if self.use_keyring {
            if let Ok(e) = keyring::Entry::new(SERVICE, &key) {
                let _ = e.delete_credential();
            }
        }
        self.file_remove(&key)
    }

    fn file_remove(&self, key: &str) -> Result<()> {
        let mut all = self.file_read();
        if all.remove(key).is_some() {
            let body = serde_json::to_vec(&all).map_err(|e| AppError::Invalid(e.to_string()))?;
            write_private(&self.file, &body)?;
        }
        Ok(())
    }

    fn file_read(&self) -> std::collections::BTreeMap<String, String> {
        match std::fs::metadata(&self.file) {
            Ok(m) if m.len() <= MAX_SETTINGS_BYTES => std::fs::read(&self.file)
                .ok()
                .and_then(|raw| serde_json::from_slice(&raw).ok())
                .unwrap_or_default(),
            _ => Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dyad-app-{name}-{}", random_hex(4)));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn token_file_is_private_and_round_trips() {
        let d = tmpdir("tokens");
        let t = TokenStore::new(&d, false);
        assert_eq!(
            t.put("http://h:1", "ann", "tok1").expect("writable"),
            "file"
        );
        assert_eq!(t.get("http://h:1", "ann").as_deref(), Some("tok1"));
        assert_eq!(t.get("http://h:2", "ann"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.join("tokens.json"))
                .expect("written")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        t.remove("http://h:1", "ann").expect("writable");
        assert_eq!(t.get("http://h:1", "ann"), None);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn settings_missing_broken_and_oversized() {
        let d = tmpdir("settings");
        let p = d.join("settings.json");
        let s = Settings::load(&p).expect("missing file = defaults");
        assert!(s.device_id.starts_with("desktop-"));
        s.save(&p).expect("writable");
        assert_eq!(Settings::load(&p).expect("saved").device_id, s.device_id);
        std::fs::write(&p, b"{not json").expect("writable");
        let e = Settings::load(&p).expect_err("broken file");
        assert!(e.to_string().contains("not valid"), "{e}");
        std::fs::write(&p, vec![b' '; MAX_SETTINGS_BYTES as usize + 1]).expect("writable");
        assert!(matches!(Settings::load(&p), Err(AppError::Invalid(_))));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn sound_processing_is_on_in_old_files_and_a_choice_is_kept() {
        let d = tmpdir("settings-sound");
        let p = d.join("settings.json");
        // A file from before the Sound settings existed.
        std::fs::write(&p, br#"{"device_id":"desktop-abc","username":"ann"}"#).expect("writable");
        let mut s = Settings::load(&p).expect("old file");
        assert_eq!(s.audio_processing, AudioProcessingChoice::default());
        assert!(s.audio_processing.echo_cancellation && s.audio_processing.high_pass);
        s.audio_processing.echo_cancellation = false;
        s.audio_processing.auto_gain = false;
        s.save(&p).expect("writable");
        let back = Settings::load(&p).expect("saved");
        assert_eq!(back.audio_processing, s.audio_processing);
        let config: dyad_media::ProcessingConfig = back.audio_processing.into();
        assert!(!config.echo_cancellation && config.noise_suppression && !config.auto_gain);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn server_urls_are_checked() {
        assert_eq!(
            check_server_url(" http://example.org:8080/ ").expect("valid"),
            "http://example.org:8080"
        );
        assert_eq!(
            check_server_url("https://dyad.example.org:8443").expect("valid"),
            "https://dyad.example.org:8443"
        );
        assert!(check_server_url("ftp://x").is_err());
        assert!(check_server_url(&format!("http://{}", "a".repeat(600))).is_err());
    }
}
