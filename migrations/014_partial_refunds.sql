-- Partial refunds, their reversal, and the order stores tell them in
-- (entitlements/refunds.go).
--
-- A store purchase carries the share of it the store has refunded or
-- revoked so far, revoked_num/revoked_den of the whole purchase (0/1: none,
-- 1/1: all). Apple's revocationPercentage and Google's refunded quantity
-- describe the transaction, not one refund, so each statement sets the
-- share and the ledger moves by the difference: a second partial refund
-- takes only the additional share, a reversal gives back what refunds took.
-- revocation_as_of is when the store stated the share now applied (Apple's
-- signedDate); an older statement arriving later changes nothing.
-- revocation_steps counts changes of the share: step n's ledger posting has
-- its own idempotency key.
ALTER TABLE store_purchases
  ADD COLUMN revoked_num bigint NOT NULL DEFAULT 0,
  ADD COLUMN revoked_den bigint NOT NULL DEFAULT 1,
  ADD COLUMN revocation_as_of timestamptz,
  ADD COLUMN revocation_steps int NOT NULL DEFAULT 0,
  ADD CONSTRAINT store_purchases_revoked_share CHECK (revoked_den > 0 AND revoked_num >= 0 AND revoked_num <= revoked_den);
-- Purchases revoked before this migration were revoked whole, in one step.
UPDATE store_purchases SET revoked_num = 1, revoked_den = 1, revocation_steps = 1 WHERE revoked_at IS NOT NULL;

-- The same for a refund of a transaction never redeemed here: a reversal
-- (share 0) stays recorded, so a late copy of the refund cannot block the
-- redemption the reversal allowed.
ALTER TABLE store_revocations
  ADD COLUMN revoked_num bigint NOT NULL DEFAULT 1,
  ADD COLUMN revoked_den bigint NOT NULL DEFAULT 1,
  ADD COLUMN as_of timestamptz,
  ADD CONSTRAINT store_revocations_share CHECK (revoked_den > 0 AND revoked_num >= 0 AND revoked_num <= revoked_den);

-- A reversed refund cancels the debts it recorded; cancelled_by is the
-- reinstating ledger transaction (NULL when nothing moved in the ledger).
ALTER TABLE player_debts
  ADD COLUMN cancelled_at timestamptz,
  ADD COLUMN cancelled_by bigint REFERENCES ledger_transactions;

-- A reversed refund gives creators back what its reversals took:
-- 'reinstatement' rows (positive, reverses the credit) net against the
-- credit's reversals, so a later refund can reverse it again.
ALTER TABLE creator_credits DROP CONSTRAINT creator_credits_kind_check;
ALTER TABLE creator_credits ADD CONSTRAINT creator_credits_kind_check
  CHECK (kind IN ('code', 'item', 'tip', 'reversal', 'payout', 'reinstatement'));
ALTER TABLE creator_credits DROP CONSTRAINT creator_credits_within_spent;
ALTER TABLE creator_credits ADD CONSTRAINT creator_credits_within_spent CHECK (
  kind IN ('reversal', 'payout', 'reinstatement') OR (micro > 0 AND micro <= spent * 1000000));
ALTER TABLE creator_credits ADD CONSTRAINT creator_credits_reinstatement CHECK (kind <> 'reinstatement' OR micro > 0);
ALTER TABLE creator_credits DROP CONSTRAINT creator_credits_reversal;
ALTER TABLE creator_credits ADD CONSTRAINT creator_credits_reversal
  CHECK ((kind IN ('reversal', 'reinstatement')) = (reverses IS NOT NULL));
