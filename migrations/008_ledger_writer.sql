-- The ledger writer moves to Go (entitlements/writer.go): it locks players,
-- decides every balance change and builds every response body itself, and
-- sends set-based statements for whole batches of postings. The SQL
-- functions that did this one posting at a time, with PL/pgSQL loops and
-- response bodies assembled as jsonb, go away.
DROP FUNCTION coinop_post(text, text, text, bytea, text, text, text, text, jsonb, jsonb, text[], jsonb, jsonb, interval);
DROP FUNCTION coinop_player_balances(text, text[]);

-- A replay must return exactly the bytes the first request answered. jsonb
-- normalises key order and spacing, so bodies built in Go are kept as bytes
-- in body. Keys stored before this migration have no body: their response is
-- jsonb text, which is exactly what coinop_post returned, so a replay of an
-- old key returns response as it always did.
ALTER TABLE idempotency_keys ADD COLUMN body bytea;
ALTER TABLE idempotency_keys ALTER COLUMN response DROP NOT NULL;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_answer CHECK (body IS NOT NULL OR response IS NOT NULL);

-- The same for store redemptions, which replay from store_purchases for as
-- long as the row exists (idempotency keys are purged after a while).
ALTER TABLE store_purchases ADD COLUMN body bytea;

-- The double-entry check at commit runs once per ledger transaction, so a
-- batch of 64 purchases runs it 64 times: one query instead of two.
CREATE OR REPLACE FUNCTION coinop_ledger_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_assets bigint;
  v_unbalanced boolean;
BEGIN
  SELECT count(*), coalesce(bool_or(s.total <> 0), false) INTO v_assets, v_unbalanced
  FROM (SELECT sum(amount) AS total FROM ledger_entries WHERE transaction_id = NEW.id
        GROUP BY asset_type, asset_id) s;
  IF v_assets = 0 THEN
    RAISE EXCEPTION 'ledger transaction % has no entries', NEW.id USING ERRCODE = 'check_violation';
  END IF;
  IF v_unbalanced THEN
    RAISE EXCEPTION 'ledger transaction % does not sum to zero per asset', NEW.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
