-- Every database starts its cache epoch at a random point instead of 1, so
-- a database dropped and created again (or another one pointed at the same
-- Redis prefix) never shares an epoch with the entries the old one left in
-- Redis: those are refused as from another epoch and reloaded from this
-- database, instead of being served because their version looked newer.
-- An old entry whose epoch happens to be higher keeps new writes from
-- replacing it until it expires (COINOP_CACHE_TTL), so until then that
-- player's reads come from Postgres: slower, never stale. On an existing
-- database this discards every cached entry once.
UPDATE cache_state SET epoch = epoch + 1 + floor(random() * 1e12)::bigint;
