-- Accounts, login tokens, contacts and call history. Times are UNIX seconds (accounts, tokens)
-- or milliseconds (calls).
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,  -- argon2id PHC string
    created_at    INTEGER NOT NULL
);

CREATE TABLE tokens (
    token_hash BLOB    PRIMARY KEY,  -- SHA-256 of the token; the token itself is never stored
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
CREATE INDEX tokens_expiry ON tokens(expires_at);

CREATE TABLE contacts (
    owner_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (owner_id, contact_id)
);
CREATE INDEX contacts_by_contact ON contacts(contact_id);

-- A call id may come back after its call ended (ids are the caller's choice): rows have their own
-- key and updates go to the newest row of a call id.
CREATE TABLE calls (
    id             INTEGER PRIMARY KEY,
    call_id        TEXT    NOT NULL,
    caller         TEXT    NOT NULL,
    callee         TEXT    NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    answered_at_ms INTEGER,
    ended_at_ms    INTEGER,
    end_reason     TEXT,
    ended_by       TEXT
);
CREATE INDEX calls_by_id ON calls(call_id);
CREATE INDEX calls_by_caller ON calls(caller, started_at_ms);
CREATE INDEX calls_by_callee ON calls(callee, started_at_ms);
