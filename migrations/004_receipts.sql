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
  PRIMARY KEY (store, original_transaction_id)
);
CREATE INDEX subscriptions_player ON subscriptions (player_id);
