-- Guest links (docs/protocol.md, "Guest links"): a user mints a one-use link; whoever redeems it
-- gets a temporary guest account (users.guest_of = the host) that can call only that user.
CREATE TABLE invites (
    id         INTEGER PRIMARY KEY,
    token_hash BLOB    NOT NULL UNIQUE,  -- SHA-256 of the link's token
    host_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
);
CREATE INDEX invites_by_host ON invites(host_id);

ALTER TABLE users ADD COLUMN guest_of INTEGER REFERENCES users(id) ON DELETE CASCADE;
