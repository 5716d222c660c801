-- A refund reads what earlier reversals already took back from each of its
-- purchase's credits (creators.sqlLockCredits: creator_credits rows whose
-- reverses is the credit). Nothing indexed reverses, so every refund of a
-- credited purchase read the whole journal. Partial: only reversals and
-- reinstatements carry reverses, so a purchase's credit adds no entry.
CREATE INDEX creator_credits_reversals ON creator_credits (reverses) WHERE reverses IS NOT NULL;
