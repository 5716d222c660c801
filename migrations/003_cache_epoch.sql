-- The Redis cache of player holdings is valid only for the current epoch.
-- A replica that commits a change but cannot write it to Redis bumps the
-- epoch, so entries written before (possibly stale now) are refused by every
-- replica once it sees the new epoch, including after Redis restarts with
-- old data.
-- redis_ids holds the run ids of the Redis servers the entries were written
-- to; a replica that sees different ones (a restart from a snapshot, a
-- failover to a lagging replica) bumps the epoch once for everybody.
CREATE TABLE cache_state (
  id        boolean PRIMARY KEY DEFAULT true CHECK (id),
  epoch     bigint NOT NULL DEFAULT 1,
  redis_ids text NOT NULL DEFAULT ''
);
INSERT INTO cache_state DEFAULT VALUES;
