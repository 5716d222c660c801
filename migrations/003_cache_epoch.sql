-- The Redis cache of player holdings is valid only for the current epoch.
-- A replica that commits a change but cannot write it to Redis bumps the
-- epoch, so entries written before (possibly stale now) are refused by every
-- replica once it sees the new epoch, including after Redis restarts with
-- old data.
CREATE TABLE cache_state (
  id    boolean PRIMARY KEY DEFAULT true CHECK (id),
  epoch bigint NOT NULL DEFAULT 1
);
INSERT INTO cache_state DEFAULT VALUES;
