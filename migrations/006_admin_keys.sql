-- Admin API keys. Only a SHA-256 hash of each key is stored: keys are 256
-- random bits, so the hash cannot be reversed or guessed, and a fast hash
-- lets every request look its key up by index. Revoked keys stay, so the
-- audit log's actors keep meaning something; names are never reused.
CREATE TABLE admin_keys (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$'),
  roles        text[] NOT NULL CHECK (cardinality(roles) > 0
                 AND roles <@ ARRAY['viewer', 'editor', 'publisher', 'support', 'server', 'admin']),
  key_hash     bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
  key_prefix   text NOT NULL,
  created_by   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at   timestamptz,
  revoked_by   text
);
