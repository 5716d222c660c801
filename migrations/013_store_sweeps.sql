-- Google Play pending purchases and the store reconciliation sweep
-- (issue 12).
--
-- A one-time purchase whose payment is pending (cash, bank transfer) cannot
-- be granted when the game redeems it; the player who presented it is
-- remembered here, and Play's ONE_TIME_PRODUCT_PURCHASED notification
-- grants it to that player when the payment completes. The grant itself is
-- the usual store_purchases row, unique by order id: once, whoever asks.
CREATE TABLE store_pending_purchases (
  store          text NOT NULL,
  purchase_token text NOT NULL,
  product_id     text NOT NULL,
  player_id      text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (store, purchase_token)
);

-- One row per store the sweep reads (Apple's notification history, Google's
-- voided purchases). The lease makes one replica sweep a store per
-- interval; the cursor is where the next sweep starts, so nothing between
-- two sweeps is missed even when one fails.
CREATE TABLE store_sweeps (
  store            text PRIMARY KEY,
  cursor_time      timestamptz,
  next_run_at      timestamptz NOT NULL DEFAULT now(),
  lease_until      timestamptz,
  lease_token      uuid,
  last_started_at  timestamptz,
  last_finished_at timestamptz,
  last_found       bigint NOT NULL DEFAULT 0 CHECK (last_found >= 0),
  last_applied     bigint NOT NULL DEFAULT 0 CHECK (last_applied >= 0),
  found            bigint NOT NULL DEFAULT 0 CHECK (found >= 0),
  applied          bigint NOT NULL DEFAULT 0 CHECK (applied >= 0),
  runs             bigint NOT NULL DEFAULT 0 CHECK (runs >= 0),
  failures         bigint NOT NULL DEFAULT 0 CHECK (failures >= 0),
  last_error       text NOT NULL DEFAULT ''
);
