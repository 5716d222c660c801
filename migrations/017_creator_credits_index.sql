-- creator_credits is indexed by creator alone (it was (creator_id,
-- currency, available_at), migrations/012). Every read by creator (the
-- earnings, a statement, a payout) reads all of a creator's rows anyway, so
-- the longer key bought nothing, and it cost every purchase under a code:
-- each creator's rows had their own insertion point, a leaf split in the
-- middle of the index whenever one filled, and with many creators each
-- credit dirtied a different leaf. On the creator id alone, btree
-- deduplication keeps a creator's rows as posting lists in few pages. With
-- the bench's 50 creators, inserting credits went from about 1,800 to 2,300
-- transactions of 32 credits a second (pgbench, 4 clients, 2 cores).
--
-- A database with a large creator_credits can build the index without
-- blocking writes before upgrading, which this migration then keeps:
--   CREATE INDEX CONCURRENTLY creator_credits_by_creator ON creator_credits (creator_id);
CREATE INDEX IF NOT EXISTS creator_credits_by_creator ON creator_credits (creator_id);
DROP INDEX creator_credits_creator;
