//! Persistent data on SQLite (sqlx): users with argon2id password hashes, login tokens (stored
//! only as SHA-256), contacts, and call history. Numbered migrations in `migrations/`.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a write has reached the disk when its
//! call returns and nothing committed is lost if the process dies. Times are passed in.

use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use dyad_proto::limits::MAX_CONTACTS;
use dyad_proto::{ContactState, EndReason, ErrorCode, ProtoError};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::error::{Result, ServerError};

fn db(e: sqlx::Error) -> ServerError {
    ServerError::Store(e.to_string())
}

fn refused(code: ErrorCode, message: &str) -> ServerError {
    ServerError::Proto(ProtoError::new(code, message))
}

fn taken_name() -> ServerError {
    refused(
        ErrorCode::UsernameTaken,
        "that username is taken, or looks too much like one that is",
    )
}

pub use dyad_proto::http::CallRecord;

/// `id, host_id, host, expires_at, used_at, revoked_at` of an invites row.
type InviteRow = (i64, i64, String, i64, Option<i64>, Option<i64>);

/// `call_id, caller, caller_device, callee, callee_device, answered_at_ms, relay_only` of a calls
/// row.
type OpenCallRow = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    i64,
);

/// A call the history shows with no end (see [`Store::open_calls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCall {
    /// Call id.
    pub call_id: String,
    /// Caller username.
    pub caller: String,
    /// The caller's device (absent in rows written before it was recorded).
    pub caller_device: Option<String>,
    /// Callee username.
    pub callee: String,
    /// The callee's device that answered, if one did.
    pub callee_device: Option<String>,
    /// Whether an answer was selected.
    pub answered: bool,
    /// A stranger's call: relayed candidates only.
    pub relay_only: bool,
}

/// The database. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// Hashes a password with argon2id (OWASP parameters: m = 19 MiB, t = 2, p = 1; the crate's
/// defaults). CPU-heavy (tens of ms): call it off the async threads.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ServerError::Store(format!("random: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ServerError::Store(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServerError::Store(format!("argon2: {e}")))
}

/// Checks a password against a stored PHC hash. CPU-heavy like [`hash_password`].
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that a wrong username costs the
/// same time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never matches").unwrap_or_default())
}

/// Password hashes computed at once, server-wide: each holds 19 MiB and a core for tens of ms,
/// so a burst of logins queues here instead of taking every blocking thread and the memory.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| ServerError::Store(format!("hashing queue: {e}")))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServerError::Store(format!("hashing task: {e}")))
}

fn unknown_token() -> ServerError {
    refused(ErrorCode::Unauthorized, "unknown token")
}

/// The hash to look a client's token up by; a token longer than any we issue is unknown.
fn lookup_hash(token: &str) -> Result<Vec<u8>> {
    if token.len() > 128 {
        return Err(unknown_token());
    }
    Ok(token_hash(token))
}

/// `token_expired` once `now_unix` reaches `expires_at`.
fn unexpired(expires_at: i64, now_unix: u64) -> Result<()> {
    if now_unix >= u64_of(expires_at) {
        return Err(refused(
            ErrorCode::TokenExpired,
            "token expired: log in again",
        ));
    }
    Ok(())
}

/// 32 random bytes, URL-safe base64: a login token or a guest link.
fn new_secret() -> Result<String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| ServerError::Store(format!("random: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// Usernames that start with this are guest accounts; nobody can register one.
pub const GUEST_PREFIX: &str = "guest-";

/// What a WebSocket session needs to know about its user, read with the token check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The username.
    pub user: String,
    /// Their contacts and requests either way, sorted by name (none for a guest).
    pub contacts: Vec<(String, ContactState)>,
    /// Whether people who are not contacts may call them.
    pub anyone_may_call: bool,
    /// For a guest account: the one user it can call.
    pub guest_of: Option<String>,
    /// When the token stops working, UNIX seconds (the session is closed then).
    pub expires_at: u64,
}

/// Whether a call may be placed, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPermission {
    /// The two are accepted contacts.
    Contact,
    /// Not contacts, but the callee lets anyone call: the call is relayed.
    Stranger,
}

/// The contact list from the names a user asked for and the names that asked them (each
/// space-separated): both ways is accepted. Sorted by name; incoming requests past
/// [`MAX_CONTACTS`] are left out (nobody's list grows without bound because others ask).
fn contact_states(outgoing: Option<&str>, incoming: Option<&str>) -> Vec<(String, ContactState)> {
    let names = |list: Option<&str>| -> std::collections::BTreeSet<String> {
        list.unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let outgoing = names(outgoing);
    let incoming = names(incoming);
    let mut list: Vec<(String, ContactState)> = outgoing
        .iter()
        .map(|n| {
            let state = if incoming.contains(n) {
                ContactState::Accepted
            } else {
                ContactState::Requested
            };
            (n.clone(), state)
        })
        .collect();
    list.extend(
        incoming
            .iter()
            .filter(|n| !outgoing.contains(*n))
            .take(MAX_CONTACTS)
            .map(|n| (n.clone(), ContactState::Incoming)),
    );
    list.sort_by(|a, b| a.0.cmp(&b.0));
    list
}

/// The SHA-256 a token is stored and looked up by.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Store> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(db)?;
        Self::migrate(pool).await
    }

    /// A private in-memory database (tests, throwaway servers).
    pub async fn open_in_memory() -> Result<Store> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(db)?
            .foreign_keys(true);
        // One connection: every connection to ":memory:" would be a different database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db)?;
        Self::migrate(pool).await
    }

    async fn migrate(pool: SqlitePool) -> Result<Store> {
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| ServerError::Store(e.to_string()))?;
        Ok(Store { pool })
    }

    async fn user_id(&self, username: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    /// Creates an account. `username_taken` if it exists, or if another account's name looks
    /// the same ([`dyad_proto::limits::username_skeleton`]).
    pub async fn register(&self, username: &str, password: &str, now_unix: u64) -> Result<()> {
        let skeleton = dyad_proto::limits::username_skeleton(username);
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE username = ? OR skeleton = ?")
                .bind(username)
                .bind(&skeleton)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        if taken.is_some() {
            return Err(taken_name());
        }
        let password = password.to_owned();
        let hash = blocking(move || hash_password(&password)).await??;
        let inserted = sqlx::query(
            "INSERT INTO users (username, password_hash, created_at, skeleton) VALUES (?, ?, ?, ?)",
        )
        .bind(username)
        .bind(hash)
        .bind(i64_of(now_unix))
        .bind(&skeleton)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            // Two registrations raced past the check above.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(taken_name()),
            Err(e) => Err(db(e)),
        }
    }

    /// Creates many accounts that share one already-computed password hash, and a token for each,
    /// in a single transaction (bulk provisioning and benchmarks: hashing 10 000 passwords would
    /// take minutes). Returns the tokens in order.
    pub async fn provision_users(
        &self,
        usernames: &[String],
        password_hash: &str,
        now_unix: u64,
        ttl_secs: u64,
    ) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let mut tokens = Vec::with_capacity(usernames.len());
        for name in usernames {
            let id: i64 = sqlx::query_scalar("INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?) RETURNING id")
                .bind(name)
                .bind(password_hash)
                .bind(i64_of(now_unix))
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw).map_err(|e| ServerError::Store(format!("random: {e}")))?;
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
            sqlx::query("INSERT INTO tokens (token_hash, user_id, expires_at) VALUES (?, ?, ?)")
                .bind(token_hash(&token))
                .bind(id)
                .bind(i64_of(now_unix.saturating_add(ttl_secs)))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tokens.push(token);
        }
        tx.commit().await.map_err(db)?;
        Ok(tokens)
    }

    /// Adds `(owner, contact)` pairs in one transaction, without the per-owner limit check
    /// (benchmarks provision hundreds of thousands). Unknown names are skipped.
    pub async fn provision_contacts(&self, pairs: &[(String, String)]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        for (owner, contact) in pairs {
            sqlx::query(
                "INSERT OR IGNORE INTO contacts (owner_id, contact_id) \
                 SELECT o.id, c.id FROM users o, users c WHERE o.username = ? AND c.username = ?",
            )
            .bind(owner)
            .bind(contact)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    /// Checks a login. Unknown user and wrong password are the same `wrong_credentials`, and
    /// take the same time.
    pub async fn verify_login(&self, username: &str, password: &str) -> Result<()> {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE username = ?")
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        let exists = stored.is_some();
        let phc = stored.unwrap_or_else(|| decoy_hash().to_owned());
        let password = password.to_owned();
        let ok = blocking(move || verify_password(&password, &phc)).await?;
        if ok && exists {
            Ok(())
        } else {
            Err(refused(
                ErrorCode::WrongCredentials,
                "wrong username or password",
            ))
        }
    }

    /// Issues a login token for `username`, valid `ttl_secs` from `now_unix`. Returns the token
    /// (32 random bytes, URL-safe base64) and its expiry.
    pub async fn create_token(
        &self,
        username: &str,
        now_unix: u64,
        ttl_secs: u64,
    ) -> Result<(String, u64)> {
        let user = self
            .user_id(username)
            .await?
            .ok_or_else(|| refused(ErrorCode::UnknownUser, "no such user"))?;
        let token = new_secret()?;
        let expires_at = now_unix.saturating_add(ttl_secs);
        sqlx::query("INSERT INTO tokens (token_hash, user_id, expires_at) VALUES (?, ?, ?)")
            .bind(token_hash(&token))
            .bind(user)
            .bind(i64_of(expires_at))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok((token, expires_at))
    }

    /// The username behind a token: `unauthorized` if unknown or revoked, `token_expired` once
    /// `now_unix` reaches its expiry.
    pub async fn check_token(&self, token: &str, now_unix: u64) -> Result<String> {
        let row = sqlx::query("SELECT users.username, tokens.expires_at FROM tokens JOIN users ON users.id = tokens.user_id WHERE tokens.token_hash = ?")
            .bind(lookup_hash(token)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let row = row.ok_or_else(unknown_token)?;
        unexpired(row.get(1), now_unix)?;
        Ok(row.get(0))
    }

    /// [`Store::check_token`] and the user's contacts (sorted) in one query: what a new
    /// WebSocket session needs.
    pub async fn open_session(&self, token: &str, now_unix: u64) -> Result<SessionInfo> {
        // Usernames have no spaces (limits.rs), so a space-separated list is unambiguous.
        type Row = (
            String,
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT u.username, t.expires_at, \
             (SELECT group_concat(c.username, ' ') FROM contacts \
              JOIN users c ON c.id = contacts.contact_id WHERE contacts.owner_id = u.id), \
             (SELECT group_concat(o.username, ' ') FROM contacts \
              JOIN users o ON o.id = contacts.owner_id WHERE contacts.contact_id = u.id), \
             (SELECT h.username FROM users h WHERE h.id = u.guest_of), u.anyone_may_call \
             FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
        )
        .bind(lookup_hash(token)?)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let (user, expires_at, outgoing, incoming, guest_of, anyone_may_call) =
            row.ok_or_else(unknown_token)?;
        unexpired(expires_at, now_unix)?;
        Ok(SessionInfo {
            user,
            contacts: contact_states(outgoing.as_deref(), incoming.as_deref()),
            guest_of,
            anyone_may_call: anyone_may_call != 0,
            expires_at: u64_of(expires_at),
        })
    }

    /// Whether `caller` may ring `callee`: they are contacts, or the callee lets anyone call (a
    /// stranger's call, to be relayed); `not_allowed` otherwise, `unknown_user` if there is no
    /// such callee.
    pub async fn call_permission(&self, caller: &str, callee: &str) -> Result<CallPermission> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT e.anyone_may_call, \
             EXISTS(SELECT 1 FROM contacts WHERE owner_id = r.id AND contact_id = e.id), \
             EXISTS(SELECT 1 FROM contacts WHERE owner_id = e.id AND contact_id = r.id) \
             FROM users e, users r WHERE e.username = ? AND r.username = ?",
        )
        .bind(callee)
        .bind(caller)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        match row {
            None => Err(refused(ErrorCode::UnknownUser, "no such user")),
            Some((_, 1, 1)) => Ok(CallPermission::Contact),
            Some((1, _, _)) => Ok(CallPermission::Stranger),
            Some(_) => Err(refused(
                ErrorCode::NotAllowed,
                "you can call only people who accepted you as a contact",
            )),
        }
    }

    /// Sets whether people who are not contacts may call `user`.
    pub async fn set_anyone_may_call(&self, user: &str, anyone: bool) -> Result<()> {
        sqlx::query("UPDATE users SET anyone_may_call = ? WHERE username = ?")
            .bind(i64::from(anyone))
            .bind(user)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Mints a one-use guest link for `host`, valid `ttl_secs` from `now_unix`: the token and
    /// its expiry. A guest cannot make links (`not_allowed`).
    pub async fn create_invite(
        &self,
        host: &str,
        now_unix: u64,
        ttl_secs: u64,
    ) -> Result<(String, u64)> {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, guest_of FROM users WHERE username = ?")
                .bind(host)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        let (host_id, guest_of) =
            row.ok_or_else(|| refused(ErrorCode::UnknownUser, "no such user"))?;
        if guest_of.is_some() {
            return Err(refused(
                ErrorCode::NotAllowed,
                "a guest cannot make guest links",
            ));
        }
        let token = new_secret()?;
        let expires_at = now_unix.saturating_add(ttl_secs);
        sqlx::query(
            "INSERT INTO invites (token_hash, host_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash(&token))
        .bind(host_id)
        .bind(i64_of(now_unix))
        .bind(i64_of(expires_at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok((token, expires_at))
    }

    /// Revokes `host`'s unused link `token`. `not_found` when there is no such link of theirs
    /// that can still be used.
    pub async fn revoke_invite(&self, host: &str, token: &str, now_unix: u64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE invites SET revoked_at = ? WHERE token_hash = ? \
             AND host_id = (SELECT id FROM users WHERE username = ?) \
             AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(i64_of(now_unix))
        .bind(lookup_hash(token)?)
        .bind(host)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(refused(ErrorCode::NotFound, "no such guest link"));
        }
        Ok(())
    }

    /// Redeems guest link `token` once: creates the guest account (`guest-` and 8 hex digits,
    /// no password that can ever match) and a login token for it valid `ttl_secs`. Returns
    /// (guest, host, token, expires_at). `not_found` for an unknown link, `invite_expired`
    /// (expired or revoked), `invite_used`.
    pub async fn redeem_invite(
        &self,
        token: &str,
        now_unix: u64,
        ttl_secs: u64,
    ) -> Result<(String, String, String, u64)> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let row: Option<InviteRow> = sqlx::query_as(
            "SELECT i.id, i.host_id, h.username, i.expires_at, i.used_at, i.revoked_at \
             FROM invites i JOIN users h ON h.id = i.host_id WHERE i.token_hash = ?",
        )
        .bind(lookup_hash(token).map_err(|_| refused(ErrorCode::NotFound, "no such guest link"))?)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let (id, host_id, host, expires_at, used_at, revoked_at) =
            row.ok_or_else(|| refused(ErrorCode::NotFound, "no such guest link"))?;
        if used_at.is_some() {
            return Err(refused(
                ErrorCode::InviteUsed,
                "this guest link was used already",
            ));
        }
        if revoked_at.is_some() || now_unix >= u64_of(expires_at) {
            return Err(refused(
                ErrorCode::InviteExpired,
                "this guest link has expired",
            ));
        }
        let used = sqlx::query("UPDATE invites SET used_at = ? WHERE id = ? AND used_at IS NULL")
            .bind(i64_of(now_unix))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if used.rows_affected() == 0 {
            return Err(refused(
                ErrorCode::InviteUsed,
                "this guest link was used already",
            ));
        }
        let mut guest = String::new();
        for _ in 0..8 {
            let mut raw = [0u8; 4];
            getrandom::fill(&mut raw).map_err(|e| ServerError::Store(format!("random: {e}")))?;
            let name = format!("{GUEST_PREFIX}{:08x}", u32::from_le_bytes(raw));
            // '!' is not a PHC string: verify_password never accepts anything against it.
            let inserted = sqlx::query(
                "INSERT OR IGNORE INTO users (username, password_hash, created_at, guest_of, skeleton) \
                 VALUES (?, '!guest', ?, ?, ?)",
            )
            .bind(&name)
            .bind(i64_of(now_unix))
            .bind(host_id)
            .bind(dyad_proto::limits::username_skeleton(&name))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if inserted.rows_affected() == 1 {
                guest = name;
                break;
            }
        }
        if guest.is_empty() {
            return Err(ServerError::Store("no free guest name".into()));
        }
        let session = new_secret()?;
        let session_expires = now_unix.saturating_add(ttl_secs);
        sqlx::query(
            "INSERT INTO tokens (token_hash, user_id, expires_at) \
             VALUES (?, (SELECT id FROM users WHERE username = ?), ?)",
        )
        .bind(token_hash(&session))
        .bind(&guest)
        .bind(i64_of(session_expires))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok((guest, host, session, session_expires))
    }

    /// The host of guest account `username`, if it is one.
    pub async fn guest_host(&self, username: &str) -> Result<Option<String>> {
        sqlx::query_scalar(
            "SELECT h.username FROM users u JOIN users h ON h.id = u.guest_of WHERE u.username = ?",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)
    }

    /// Logs a token out.
    pub async fn revoke_token(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM tokens WHERE token_hash = ?")
            .bind(token_hash(token))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Deletes expired tokens; returns how many.
    pub async fn purge_expired(&self, now_unix: u64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM tokens WHERE expires_at <= ?")
            .bind(i64_of(now_unix))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    /// `owner` asks `contact` to be a contact, or accepts their request (idempotent). Returns
    /// where the two stand now — `Accepted` once both asked, else `Requested` — or `None` if
    /// `owner` had asked already (nothing changed). `unknown_user`, `self_reference`, or
    /// `invalid_field` past [`MAX_CONTACTS`].
    pub async fn add_contact(
        &self,
        owner: &str,
        contact: &str,
    ) -> std::result::Result<Option<ContactState>, ServerError> {
        if owner == contact {
            return Err(refused(ErrorCode::SelfReference, "you cannot add yourself"));
        }
        let owner_id = self
            .user_id(owner)
            .await?
            .ok_or_else(|| refused(ErrorCode::UnknownUser, "no such user"))?;
        let contact_id = self
            .user_id(contact)
            .await?
            .ok_or_else(|| refused(ErrorCode::UnknownUser, "no such user"))?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE owner_id = ?")
            .bind(owner_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_CONTACTS {
            return Err(refused(ErrorCode::InvalidField, "contact list is full"));
        }
        let inserted =
            sqlx::query("INSERT OR IGNORE INTO contacts (owner_id, contact_id) VALUES (?, ?)")
                .bind(owner_id)
                .bind(contact_id)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        let mutual: i64 = sqlx::query_scalar(
            "SELECT EXISTS(SELECT 1 FROM contacts WHERE owner_id = ? AND contact_id = ?)",
        )
        .bind(contact_id)
        .bind(owner_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(Some(if mutual != 0 {
            ContactState::Accepted
        } else {
            ContactState::Requested
        }))
    }

    /// Makes `a` and `b` accepted contacts of each other (idempotent), as two `contact_add`s
    /// would: for local accounts the embedded server sets up, benchmarks and tests. A live
    /// session learns of it only at its next connect (the hub's index is not told).
    pub async fn make_contacts(&self, a: &str, b: &str) -> Result<()> {
        self.add_contact(a, b).await?;
        self.add_contact(b, a).await?;
        Ok(())
    }

    /// Ends what `owner` and `contact` have, whichever way it goes: a contact removed, a request
    /// withdrawn or declined (idempotent). Returns whether there was anything to end.
    pub async fn remove_contact(&self, owner: &str, contact: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM contacts WHERE \
             (owner_id = (SELECT id FROM users WHERE username = ?1) \
              AND contact_id = (SELECT id FROM users WHERE username = ?2)) \
             OR (owner_id = (SELECT id FROM users WHERE username = ?2) \
              AND contact_id = (SELECT id FROM users WHERE username = ?1))",
        )
        .bind(owner)
        .bind(contact)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    /// History: a call was placed (from the caller's `caller_device`).
    pub async fn call_started(
        &self,
        call_id: &str,
        (caller, caller_device): (&str, &str),
        callee: &str,
        at_ms: u64,
        relay_only: bool,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO calls (call_id, caller, caller_device, callee, started_at_ms, relay_only) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(call_id)
        .bind(caller)
        .bind(caller_device)
        .bind(callee)
        .bind(i64_of(at_ms))
        .bind(i64::from(relay_only))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// History: the call was answered on the callee's `device`.
    pub async fn call_answered(
        &self,
        (caller, call_id): (&str, &str),
        device: &str,
        at_ms: u64,
    ) -> Result<()> {
        sqlx::query("UPDATE calls SET answered_at_ms = ?, callee_device = ? WHERE id = (SELECT max(id) FROM calls WHERE call_id = ? AND caller = ?) AND ended_at_ms IS NULL")
            .bind(i64_of(at_ms))
            .bind(device)
            .bind(call_id)
            .bind(caller)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Records the candidate pair one party of an answered, unfinished call reported; the
    /// first report of the call also sets the time to connect (from the answer, server clock).
    pub async fn call_path(
        &self,
        (caller, call_id): (&str, &str),
        by_caller: bool,
        path: &str,
        at_ms: u64,
    ) -> Result<()> {
        let column = if by_caller {
            "caller_path"
        } else {
            "callee_path"
        };
        let sql = format!(
            "UPDATE calls SET {column} = ?, connect_ms = coalesce(connect_ms, max(0, ? - answered_at_ms)) \
             WHERE id = (SELECT max(id) FROM calls WHERE call_id = ? AND caller = ?) \
             AND answered_at_ms IS NOT NULL AND ended_at_ms IS NULL"
        );
        sqlx::query(&sql)
            .bind(path)
            .bind(i64_of(at_ms))
            .bind(call_id)
            .bind(caller)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Calls with no end in the history: those that were live when the server last stopped.
    pub async fn open_calls(&self) -> Result<Vec<OpenCall>> {
        let rows: Vec<OpenCallRow> = sqlx::query_as(
            "SELECT call_id, caller, caller_device, callee, callee_device, answered_at_ms, \
             relay_only FROM calls WHERE ended_at_ms IS NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(
                |(call_id, caller, caller_device, callee, callee_device, answered, relay_only)| {
                    OpenCall {
                        call_id,
                        caller,
                        caller_device,
                        callee,
                        callee_device,
                        answered: answered.is_some(),
                        relay_only: relay_only != 0,
                    }
                },
            )
            .collect())
    }

    /// History: the call ended. The first end recorded stays.
    pub async fn call_ended(
        &self,
        (caller, call_id): (&str, &str),
        at_ms: u64,
        reason: EndReason,
        by: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE calls SET ended_at_ms = ?, end_reason = ?, ended_by = ? \
             WHERE id = (SELECT max(id) FROM calls WHERE call_id = ? AND caller = ?) \
             AND ended_at_ms IS NULL",
        )
        .bind(i64_of(at_ms))
        .bind(reason.as_str())
        .bind(by)
        .bind(call_id)
        .bind(caller)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// The calls `user` took part in, newest first, at most `limit`.
    pub async fn history(&self, user: &str, limit: u32) -> Result<Vec<CallRecord>> {
        let rows = sqlx::query(
            "SELECT call_id, caller, callee, started_at_ms, answered_at_ms, ended_at_ms, end_reason, ended_by, \
             caller_path, callee_path, connect_ms FROM calls WHERE caller = ? OR callee = ? ORDER BY started_at_ms DESC, id DESC LIMIT ?",
        )
        .bind(user)
        .bind(user)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|r| CallRecord {
                call_id: r.get(0),
                caller: r.get(1),
                callee: r.get(2),
                started_at_ms: u64_of(r.get(3)),
                answered_at_ms: r.get::<Option<i64>, _>(4).map(u64_of),
                ended_at_ms: r.get::<Option<i64>, _>(5).map(u64_of),
                end_reason: r.get(6),
                ended_by: r.get(7),
                caller_path: r.get(8),
                callee_path: r.get(9),
                connect_ms: r.get::<Option<i64>, _>(10).map(u64_of),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 0004 fills in existing names with the folding written in SQL: it must give
    /// what `username_skeleton` gives (else an old name and a new look-alike would not collide).
    #[tokio::test]
    async fn the_migrations_sql_folding_matches_username_skeleton() {
        let store = Store::open_in_memory().await.expect("store");
        let names: Vec<String> = [
            "alice",
            "al1ce",
            "a.l-i_ce",
            "rnartin",
            "vvendy",
            "b0b",
            "s3v3n",
            "x4-5y",
            "li2",
            "9reg",
            "6ob",
            "tom7",
            "8ill",
            "rrn",
            "vvv",
            "0123456789",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        store
            .provision_users(&names, "!", 0, 60)
            .await
            .expect("users without a skeleton");
        let migration = include_str!("../migrations/0004_username_skeleton.sql");
        let update = &migration[migration.find("UPDATE OR IGNORE").expect("the backfill")..];
        // Unique index: look-alikes among these keep NULL, as on a real server; compare the rest.
        sqlx::query(update)
            .execute(&store.pool)
            .await
            .expect("backfill");
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT username, skeleton FROM users ORDER BY id")
                .fetch_all(&store.pool)
                .await
                .expect("rows");
        let mut filled = 0;
        for (name, skeleton) in rows {
            if let Some(s) = skeleton {
                assert_eq!(s, dyad_proto::limits::username_skeleton(&name), "{name}");
                filled += 1;
            }
        }
        assert!(filled >= 12, "{filled}");
    }
}
