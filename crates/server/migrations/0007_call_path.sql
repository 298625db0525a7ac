-- What each side's ICE agent selected (issue 16): `local/remote protocol` as that party reported
-- it (e.g. `relay/srflx udp`), the latest report of each; and the time from the answer to the
-- first report, measured by the server's clock, so operators see how many calls need the relay
-- and how long calls take to connect.
ALTER TABLE calls ADD COLUMN caller_path TEXT;
ALTER TABLE calls ADD COLUMN callee_path TEXT;
ALTER TABLE calls ADD COLUMN connect_ms INTEGER;
