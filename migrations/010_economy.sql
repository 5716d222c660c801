-- Blast-radius limits for game-server keys (issue 11). A key's limits say
-- which currencies and items it may move, the most of one asset in one
-- posting, and how much of each currency it may give per hour. NULL means
-- unrestricted (keys made before limits existed keep working as they did).
ALTER TABLE admin_keys ADD COLUMN limits jsonb
  CHECK (limits IS NULL OR jsonb_typeof(limits) = 'object');

-- What each key has given per currency in each hourly window. The writer
-- locks a key's rows (after the players) in the transaction of the posting
-- that uses them, so concurrent postings can never overspend a budget.
CREATE TABLE server_key_budgets (
  key_id       bigint NOT NULL REFERENCES admin_keys (id),
  currency     text NOT NULL,
  window_start timestamptz NOT NULL,
  used         bigint NOT NULL CHECK (used >= 0),
  PRIMARY KEY (key_id, currency, window_start)
);

-- The transactional outbox: every posting that moved holdings and every
-- catalog publish writes one event in its own transaction, so there is no
-- event for a rolled-back change and no change without its event. Writers
-- take the transaction-scoped advisory lock outbox.LockKey just before
-- inserting and hold it until commit, so events commit in id order: a reader
-- that has seen id N never later finds a committed event below N.
CREATE TABLE events (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type       text NOT NULL CHECK (type ~ '^[a-z]+\.[a-z_]+$'),
  player_id  text,
  created_at timestamptz NOT NULL DEFAULT now(),
  data       jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object')
);
