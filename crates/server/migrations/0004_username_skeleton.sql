-- Look-alike names (issue 17): each account's skeleton (dyad_proto::limits::username_skeleton:
-- separators dropped, 0→o, 1/i→l, 2→z, 3→e, 4→a, 5→s, 7→t, 8→b, 9→g, rn→m, vv→w), unique, so `al1ce`
-- can't be registered beside `alice`. Existing names get the same folding, written in SQL for this
-- one backfill; of names that already look alike, the oldest keeps its skeleton and the others
-- stay NULL (they keep working; only new names are checked). Provisioned accounts (benchmarks)
-- are stored without one.
ALTER TABLE users ADD COLUMN skeleton TEXT;
CREATE UNIQUE INDEX users_skeleton ON users(skeleton);
UPDATE OR IGNORE users SET skeleton =
    replace(replace(
    replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
    replace(replace(replace(username, '_', ''), '.', ''), '-', ''),
        '0', 'o'), '1', 'l'), 'i', 'l'), '2', 'z'), '3', 'e'), '4', 'a'), '5', 's'),
        '7', 't'), '8', 'b'), '9', 'g'),
        'rn', 'm'), 'vv', 'w');
