-- Placeholder on branch creators only: migrations 011 belongs to another branch.
-- tern needs contiguous numbers; the lead drops this file at merge.
SELECT 1;
