-- The devices of a call's two parties, so that a restarted server can bring back the calls
-- that were up when it stopped (docs/architecture.md, "Calls survive a restart").
ALTER TABLE calls ADD COLUMN caller_device TEXT;
ALTER TABLE calls ADD COLUMN callee_device TEXT;
