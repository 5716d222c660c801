-- Placeholder so tern loads on branch h2a-apple-refunds: migration 013 belongs to
-- another branch. Drop this file at merge.
SELECT 1;
