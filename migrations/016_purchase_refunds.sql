-- Support refunds of purchases made with virtual currency
-- (entitlements/purchase_refunds.go). A purchase of quantity units may be
-- refunded in parts, whole units at a time; each refund is one row here,
-- written in the refund's own ledger transaction. refunded_before is what
-- earlier refunds of the purchase had refunded: the unique constraint makes
-- two refunds decided from the same state impossible, whatever the locks,
-- and the check keeps the refunds of a purchase within what it bought.
CREATE TABLE purchase_refunds (
  id                             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  player_id                      text NOT NULL REFERENCES players,
  purchase_ledger_transaction_id bigint NOT NULL REFERENCES ledger_transactions,
  -- The refund's posting; NULL when it moved nothing in the ledger (all of
  -- it flagged for support).
  ledger_transaction_id          bigint REFERENCES ledger_transactions,
  quantity                       bigint NOT NULL CHECK (quantity > 0),
  refunded_before                bigint NOT NULL CHECK (refunded_before >= 0),
  purchased                      bigint NOT NULL CHECK (purchased > 0),
  reason                         text NOT NULL,
  policy                         text NOT NULL CHECK (policy IN ('clamp', 'negative', 'flag')),
  actor                          text NOT NULL,
  idempotency_key                text NOT NULL,
  created_at                     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT purchase_refunds_within_purchase CHECK (refunded_before + quantity <= purchased),
  CONSTRAINT purchase_refunds_once UNIQUE (purchase_ledger_transaction_id, refunded_before)
);
CREATE TRIGGER purchase_refunds_immutable BEFORE UPDATE OR DELETE ON purchase_refunds
  FOR EACH ROW EXECUTE FUNCTION coinop_refuse_change();
