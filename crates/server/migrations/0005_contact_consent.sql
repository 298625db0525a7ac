-- Contact consent (issue 17): a `contacts` row (owner, contact) now means "owner asked for
-- contact"; the two are contacts (presence, calls) only when both rows exist. Rows from before
-- this are kept as requests. Whether people who are not contacts may call this account (their
-- calls are relayed): off unless the user turns it on.
ALTER TABLE users ADD COLUMN anyone_may_call INTEGER NOT NULL DEFAULT 0;
