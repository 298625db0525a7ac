-- A stranger's call is relay-only (issue 17): remembered with the call, so that a call the server
-- brings back after a restart is still filtered.
ALTER TABLE calls ADD COLUMN relay_only INTEGER NOT NULL DEFAULT 0;
