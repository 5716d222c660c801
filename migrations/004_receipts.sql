-- Real-money purchases from app stores. (store, transaction_id) is unique and
-- the grant is written in the same transaction as this row, so a receipt can
-- never be redeemed twice, by one player or by two.
CREATE TABLE store_purchases (
  store                   text NOT NULL,
  transaction_id          text NOT NULL,
  player_id               text NOT NULL REFERENCES players,
  original_transaction_id text NOT NULL DEFAULT '',
  product_id              text NOT NULL,
  environment             text NOT NULL,
  quantity                bigint NOT NULL CHECK (quantity > 0),
  purchased_at            timestamptz NOT NULL,
  expires_at              timestamptz,
  ledger_transaction_id   bigint REFERENCES ledger_transactions,
  -- Google purchases must be acknowledged or consumed within 3 days after the
  -- grant commits; NULL means not yet done.
  purchase_token          text NOT NULL DEFAULT '',
  consumable              boolean NOT NULL DEFAULT false,
  acknowledged_at         timestamptz,
  acknowledge_attempts    int NOT NULL DEFAULT 0,
  next_acknowledge_at     timestamptz NOT NULL DEFAULT now(),
  revoked_at              timestamptz,
  revocation_ledger_transaction_id bigint REFERENCES ledger_transactions,
  response                jsonb NOT NULL,
  created_at              timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (store, transaction_id)
);
CREATE INDEX store_purchases_player ON store_purchases (player_id, created_at DESC);
CREATE INDEX store_purchases_original ON store_purchases (store, original_transaction_id);
CREATE INDEX store_purchases_unacknowledged ON store_purchases (created_at)
  WHERE store = 'google' AND acknowledged_at IS NULL;

-- Refunds and revocations for transactions never redeemed here: a later
-- redemption of the same (pre-refund) signed transaction is refused.
CREATE TABLE store_revocations (
  store          text NOT NULL,
  transaction_id text NOT NULL,
  reason         text NOT NULL DEFAULT '',
  revoked_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (store, transaction_id)
);

-- Store notifications are written here before the store gets its 200, then
-- processed (with retries) from here; the key deduplicates redeliveries.
CREATE TABLE store_notifications (
  store           text NOT NULL,
  notification_id text NOT NULL,
  kind            text NOT NULL DEFAULT '',
  body            jsonb NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processed', 'failed')),
  attempts        int NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text NOT NULL DEFAULT '',
  received_at     timestamptz NOT NULL DEFAULT now(),
  processed_at    timestamptz,
  PRIMARY KEY (store, notification_id)
);
CREATE INDEX store_notifications_due ON store_notifications (next_attempt_at) WHERE status = 'pending';

-- What a refund could not take back because the player had already spent it.
CREATE TABLE player_debts (
  id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  player_id             text NOT NULL REFERENCES players,
  store                 text NOT NULL,
  transaction_id        text NOT NULL,
  asset_type            text NOT NULL,
  asset_id              text NOT NULL,
  amount                bigint NOT NULL CHECK (amount > 0),
  policy                text NOT NULL CHECK (policy IN ('clamp', 'negative', 'flag')),
  created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX player_debts_player ON player_debts (player_id);

-- Subscriptions: an entitlement that holds while expires_at is in the future.
CREATE TABLE subscriptions (
  player_id               text NOT NULL REFERENCES players,
  store                   text NOT NULL,
  original_transaction_id text NOT NULL,
  product_id              text NOT NULL,
  item_id                 text NOT NULL,
  expires_at              timestamptz NOT NULL,
  state                   text NOT NULL,
  updated_at              timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (store, original_transaction_id, item_id)
);
CREATE INDEX subscriptions_player ON subscriptions (player_id);

-- Everything a player holds, as the cache and the API see it: currency
-- balances, items, and subscription items with the time they hold until.
CREATE FUNCTION coinop_holdings(p_player text) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'currencies', coalesce((SELECT jsonb_object_agg(asset_id, quantity) FROM balances
                            WHERE player_id = p_player AND asset_type = 'currency'), '{}'::jsonb),
    'items', coalesce((SELECT jsonb_object_agg(asset_id, quantity) FROM balances
                       WHERE player_id = p_player AND asset_type = 'item' AND quantity > 0), '{}'::jsonb),
    'subscriptions', coalesce((SELECT jsonb_object_agg(item_id, expires_at) FROM (
                                 SELECT item_id, max(expires_at) AS expires_at FROM subscriptions
                                 WHERE player_id = p_player AND state IN ('active', 'grace_period') AND expires_at > now()
                                 GROUP BY item_id) s), '{}'::jsonb))
$$;

-- A change that writes no ledger transaction (a subscription renewing or
-- expiring) still moves the player's version forward, past every ledger
-- transaction id so far, so caches take the new state and refuse the old.
CREATE FUNCTION coinop_bump_version(p_player text) RETURNS bigint LANGUAGE sql AS $$
  UPDATE players SET version = nextval(pg_get_serial_sequence('ledger_transactions', 'id'))
  WHERE player_id = p_player RETURNING version
$$;
