-- The designers' workflow: scheduled versions, rollbacks and the draft.

-- A version is live from live_at on: the live catalog is the highest version
-- whose live_at has passed, so a version published with a future live_at
-- (a weekend sale) takes effect on its own at that time. Versions published
-- before this migration went live when they were created.
ALTER TABLE catalog_versions ADD COLUMN live_at timestamptz NOT NULL DEFAULT now();
-- source_version is the version a rollback restored; NULL for a publish.
ALTER TABLE catalog_versions ADD COLUMN source_version bigint REFERENCES catalog_versions;
ALTER TABLE catalog_versions DISABLE TRIGGER catalog_versions_immutable;
UPDATE catalog_versions SET live_at = created_at;
ALTER TABLE catalog_versions ENABLE TRIGGER catalog_versions_immutable;

-- The one draft catalog that designers edit before publishing. document is
-- NULL until the first edit: an untouched draft is the live catalog. The
-- document may be invalid (work in progress); it is validated on publish.
-- revision counts edits and is the draft's ETag, for optimistic concurrency.
CREATE TABLE catalog_drafts (
  id         boolean PRIMARY KEY DEFAULT true CHECK (id),
  document   jsonb,
  revision   bigint NOT NULL DEFAULT 0,
  updated_by text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO catalog_drafts DEFAULT VALUES;
