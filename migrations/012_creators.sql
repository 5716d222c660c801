-- Creators get paid (package creators): creator accounts, their codes, the
-- code each player has active, and an append-only journal of what each
-- creator earned, in micro-units (one millionth of a currency unit).
--
-- Accounts. Every journal row is one transfer of micro micro-units of a
-- currency from source_account to the creator's account creator:<id>:
--   system:creator_program  the studio's cost of code and item shares
--                           (the player pays the catalog price; the share
--                           is the studio's, never taken from the player);
--   system:creator_tips     tips: the player's currency lands here through
--                           the ledger writer, the tip less the studio fee
--                           goes on to the creator, the fee stays;
--   system:creator_payouts  a payout moves whole units out of the creator's
--                           account (coinop records it, it sends nothing).
-- A row carries both legs (source -micro, creator +micro), so every row and
-- every ledger transaction's rows sum to zero per asset by construction.
-- There is no creator balance row: purchases crediting one creator only
-- append rows (no hot row); balances are sums over the journal.

CREATE TABLE creators (
  creator_id   text PRIMARY KEY CHECK (creator_id ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
  status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  player_id    text UNIQUE CHECK (length(player_id) BETWEEN 1 AND 128),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Codes are unique case-insensitively: code_key is the lower-case form.
CREATE TABLE creator_codes (
  code_key   text PRIMARY KEY CHECK (code_key = lower(code)),
  code       text NOT NULL CHECK (code ~ '^[A-Za-z0-9_-]{3,24}$'),
  creator_id text NOT NULL REFERENCES creators,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX creator_codes_creator ON creator_codes (creator_id);

-- The code a player has set, active until expires_at (exclusive).
CREATE TABLE player_creator_codes (
  player_id  text PRIMARY KEY CHECK (length(player_id) BETWEEN 1 AND 128),
  code_key   text NOT NULL REFERENCES creator_codes,
  creator_id text NOT NULL REFERENCES creators,
  set_at     timestamptz NOT NULL,
  expires_at timestamptz NOT NULL CHECK (expires_at > set_at)
);

-- Payouts: one per creator and idempotency key; its lines are journal rows
-- of kind payout.
CREATE TABLE creator_payouts (
  payout_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  creator_id text NOT NULL REFERENCES creators,
  idem_key   text NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
  actor      text NOT NULL DEFAULT '',
  body       jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (creator_id, idem_key)
);

-- The journal. kind: code (a purchase or spend under the player's code),
-- item (a sale of the creator's item), tip, reversal (of a credit, when its
-- purchase is refunded or revoked), payout. available_at is when the row
-- counts as available (created + hold for a credit; a reversal takes its
-- credit's, so reversing a pending credit reduces pending; a payout now).
-- spent is what the player spent in whole units: a credit never exceeds it.
CREATE TABLE creator_credits (
  id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- No foreign key to creators: its check would take a key-share lock on
  -- the creator row in every crediting transaction, the hot row this table
  -- avoids. The writer credits only creators it read as active.
  creator_id            text NOT NULL,
  kind                  text NOT NULL CHECK (kind IN ('code', 'item', 'tip', 'reversal', 'payout')),
  source_account        text NOT NULL CHECK (source_account LIKE 'system:creator_%'),
  currency              text NOT NULL,
  micro                 bigint NOT NULL CHECK (micro <> 0),
  spent                 bigint NOT NULL DEFAULT 0,
  player_id             text,
  ledger_transaction_id bigint,
  reverses              bigint REFERENCES creator_credits,
  payout_id             bigint REFERENCES creator_payouts,
  available_at          timestamptz NOT NULL,
  created_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT creator_credits_within_spent CHECK (
    kind IN ('reversal', 'payout') OR (micro > 0 AND micro <= spent * 1000000)),
  CONSTRAINT creator_credits_debits CHECK (kind NOT IN ('reversal', 'payout') OR micro < 0),
  CONSTRAINT creator_credits_reversal CHECK ((kind = 'reversal') = (reverses IS NOT NULL)),
  CONSTRAINT creator_credits_payout CHECK ((kind = 'payout') = (payout_id IS NOT NULL) AND (kind <> 'payout' OR micro % 1000000 = 0))
);
CREATE INDEX creator_credits_creator ON creator_credits (creator_id, currency, available_at);
CREATE INDEX creator_credits_ledger ON creator_credits (ledger_transaction_id) WHERE ledger_transaction_id IS NOT NULL;
CREATE INDEX creator_credits_tips ON creator_credits (player_id, created_at) WHERE kind = 'tip';
CREATE TRIGGER creator_credits_immutable BEFORE UPDATE OR DELETE ON creator_credits
  FOR EACH ROW EXECUTE FUNCTION coinop_refuse_change();
