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
