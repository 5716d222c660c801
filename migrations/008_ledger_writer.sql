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
