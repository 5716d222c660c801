-- Webhooks (package webhooks): endpoints registered through the admin API
-- and `coinop webhooks`, and one delivery per (endpoint, event).
--
-- Postings never touch these tables: the webhook worker fans new events out
-- into deliveries by reading events after each endpoint's cursor (events
-- commit in id order, see 010), so a posting is never blocked or slowed by
-- delivery.

CREATE TABLE webhook_endpoints (
  id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  url                  text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
  description          text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
  -- NULL means every event type; otherwise exact types or prefixes ending
  -- in ".*" ("ledger.*").
  event_types          text[] CHECK (event_types IS NULL OR cardinality(event_types) > 0),
  -- The signing secret must be kept to sign; it is never returned after
  -- creation or rotation. previous_secret still signs (a second
  -- signature) until previous_secret_until, so receivers can roll over.
  secret               text NOT NULL,
  previous_secret      text,
  previous_secret_until timestamptz,
  enabled              boolean NOT NULL DEFAULT true,
  disabled_reason      text NOT NULL DEFAULT '',
  -- Last event id fanned out into deliveries (or skipped by the filter).
  cursor               bigint NOT NULL DEFAULT 0,
  -- Set by the first failed attempt after a success, cleared by a success:
  -- an endpoint failing every attempt for long enough is disabled.
  failing_since        timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  created_by           text NOT NULL,
  updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  endpoint_id     bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  event_id        bigint NOT NULL REFERENCES events (id),
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  -- A claimed delivery is leased: another worker takes it over only after
  -- lease_until (its claimer crashed); lease_token fences a late result.
  lease_until     timestamptz,
  lease_token     uuid,
  last_status     integer,
  last_error      text NOT NULL DEFAULT '',
  created_at      timestamptz NOT NULL DEFAULT now(),
  delivered_at    timestamptz,
  UNIQUE (endpoint_id, event_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX events_created_at ON events (created_at);
