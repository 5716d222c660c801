-- Core economy: catalog versions, players, double-entry ledger, balances and
-- idempotency records.

-- Rows that record history must never change once written.
CREATE FUNCTION coinop_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END $$;

-- Every published catalog is a new immutable version; the live catalog is the
-- highest version.
CREATE TABLE catalog_versions (
  version    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  document   jsonb NOT NULL,
  note       text NOT NULL DEFAULT '',
  created_by text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER catalog_versions_immutable BEFORE UPDATE OR DELETE ON catalog_versions
  FOR EACH ROW EXECUTE FUNCTION coinop_refuse_change();

-- One row per player, created on first use. Every change to a player's
-- holdings locks this row first, so changes for one player are serialized,
-- and version is the id of the last ledger transaction that touched them.
CREATE TABLE players (
  player_id  text PRIMARY KEY CHECK (length(player_id) BETWEEN 1 AND 128),
  version    bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_transactions (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  player_id  text NOT NULL REFERENCES players,
  kind       text NOT NULL,
  reference  text NOT NULL,
  metadata   jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_transactions_player ON ledger_transactions (player_id, id DESC);

-- account is 'player:<player_id>' or 'system:<name>' (purchases, admin_grants, ...).
-- System accounts are unbounded sources and sinks: they have entries but no
-- balance row, so purchases by different players never contend on one row.
CREATE TABLE ledger_entries (
  transaction_id bigint NOT NULL REFERENCES ledger_transactions,
  account        text NOT NULL CHECK (account LIKE 'player:%' OR account LIKE 'system:%'),
  asset_type     text NOT NULL CHECK (asset_type IN ('currency', 'item')),
  asset_id       text NOT NULL,
  amount         bigint NOT NULL CHECK (amount <> 0)
);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);

CREATE TRIGGER ledger_transactions_immutable BEFORE UPDATE OR DELETE ON ledger_transactions
  FOR EACH ROW EXECUTE FUNCTION coinop_refuse_change();
CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION coinop_refuse_change();

-- Double entry, enforced at commit: a ledger transaction has entries and they
-- sum to zero per asset.
CREATE FUNCTION coinop_ledger_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM ledger_entries WHERE transaction_id = NEW.id) THEN
    RAISE EXCEPTION 'ledger transaction % has no entries', NEW.id USING ERRCODE = 'check_violation';
  END IF;
  IF EXISTS (SELECT 1 FROM ledger_entries WHERE transaction_id = NEW.id
             GROUP BY asset_type, asset_id HAVING sum(amount) <> 0) THEN
    RAISE EXCEPTION 'ledger transaction % does not sum to zero per asset', NEW.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION coinop_ledger_balanced();

-- What each player holds: currency balances and item quantities.
CREATE TABLE balances (
  player_id  text NOT NULL REFERENCES players,
  asset_type text NOT NULL CHECK (asset_type IN ('currency', 'item')),
  asset_id   text NOT NULL,
  quantity   bigint NOT NULL,
  CONSTRAINT balances_non_negative CHECK (quantity >= 0),
  PRIMARY KEY (player_id, asset_type, asset_id)
);

-- Idempotency records live in the same transaction as the effect they protect.
-- outcome is 'pending' while the first request runs, then 'ok' or a rejection
-- code; response is what the first request answered.
CREATE TABLE idempotency_keys (
  player_id   text NOT NULL,
  scope       text NOT NULL,
  key         text NOT NULL,
  fingerprint bytea NOT NULL,
  outcome     text NOT NULL,
  response    jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (player_id, scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
