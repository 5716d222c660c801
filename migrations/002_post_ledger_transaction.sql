-- coinop_post applies one change to a player's holdings exactly once, in the
-- caller's transaction and in one round trip: it claims the idempotency key,
-- locks the player, checks funds and limits, writes the ledger transaction and
-- its double entries, updates balances and stores the response with the key.
--
-- Rules about what to buy and at what price stay in Go (entitlements); this
-- function only knows holdings, limits and the idempotency contract.
--
-- p_changes: [{"type": "currency"|"item", "id": "gold", "delta": -200,
--              "max": 99, "exceed": "limit_exceeded", "clamp": false}], one
--            entry per asset, deltas already netted per asset by the caller.
--            With clamp, a credit past max is cut to max instead of refused
--            (a paid store purchase never fails on a virtual-economy limit).
-- p_rejection: a rejection decided before touching holdings (price_mismatch,
--            item_not_found, ...); it is stored with the key and returned.
-- Returns outcome 'ok', a rejection code, or 'idempotency_key_reused';
-- response is the stored body; replayed is true when the key was seen before;
-- holdings is everything the player holds at version (for the cache), set
-- only when this call changed it.
-- A player's currency balances, with every catalog currency present (0 when
-- never held), as the API reports them.
CREATE FUNCTION coinop_player_balances(p_player text, p_currencies text[]) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_object_agg(a.id, coalesce(b.quantity, 0)), '{}'::jsonb)
  FROM (SELECT unnest(p_currencies) AS id
        UNION SELECT b2.asset_id FROM balances b2
              WHERE b2.player_id = p_player AND b2.asset_type = 'currency') a
  LEFT JOIN balances b ON b.player_id = p_player AND b.asset_type = 'currency' AND b.asset_id = a.id
$$;

CREATE FUNCTION coinop_post(
  p_player text, p_scope text, p_key text, p_fingerprint bytea,
  p_kind text, p_reference text, p_counterparty text,
  p_rejection text, p_rejection_detail jsonb,
  p_changes jsonb, p_currencies text[], p_result jsonb, p_metadata jsonb,
  p_key_wait interval
) RETURNS TABLE (outcome text, response jsonb, replayed boolean, version bigint, holdings jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  v_prior record;
  v_change record;
  v_have bigint;
  v_tx bigint;
  v_version bigint;
  v_response jsonb;
  v_claimed int;
  v_delta bigint;
  v_effective jsonb := '[]'::jsonb;
BEGIN
  -- A concurrent request holding the same key makes this insert wait for it;
  -- p_key_wait bounds that wait (lock_not_available then means "in use").
  PERFORM set_config('lock_timeout', (extract(epoch FROM p_key_wait) * 1000)::bigint::text, true);
  INSERT INTO idempotency_keys (player_id, scope, key, fingerprint, outcome, response)
  VALUES (p_player, p_scope, p_key, p_fingerprint, 'pending', '{}')
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS v_claimed = ROW_COUNT;
  PERFORM set_config('lock_timeout', '0', true);

  IF v_claimed = 0 THEN
    SELECT i.fingerprint, i.outcome, i.response INTO v_prior
    FROM idempotency_keys i
    WHERE i.player_id = p_player AND i.scope = p_scope AND i.key = p_key;
    IF v_prior.fingerprint <> p_fingerprint THEN
      RETURN QUERY SELECT 'idempotency_key_reused'::text, '{}'::jsonb, true, 0::bigint, NULL::jsonb;
      RETURN;
    END IF;
    RETURN QUERY SELECT v_prior.outcome, v_prior.response, true,
      coalesce((SELECT p.version FROM players p WHERE p.player_id = p_player), 0), NULL::jsonb;
    RETURN;
  END IF;

  -- Every change to this player's holdings goes through this row lock, so the
  -- holdings read below cannot change before this transaction commits.
  INSERT INTO players AS p (player_id) VALUES (p_player)
  ON CONFLICT (player_id) DO UPDATE SET version = p.version
  RETURNING p.version INTO v_version;

  IF p_rejection IS NULL THEN
    FOR v_change IN
      SELECT c.type, c.id, c.delta, c.max, c.exceed, coalesce(c.clamp, false) AS clamp
      FROM jsonb_to_recordset(p_changes) AS c(type text, id text, delta bigint, max bigint, exceed text, clamp boolean)
    LOOP
      SELECT b.quantity INTO v_have FROM balances b
      WHERE b.player_id = p_player AND b.asset_type = v_change.type AND b.asset_id = v_change.id;
      v_have := coalesce(v_have, 0);
      v_delta := v_change.delta;
      -- Compare without adding, so a huge delta cannot overflow here.
      IF v_change.clamp AND v_change.max IS NOT NULL AND v_delta > 0 AND v_delta > v_change.max - v_have THEN
        v_delta := greatest(v_change.max - v_have, 0);
        v_change.delta := v_delta;
      END IF;
      IF v_change.delta < 0 AND v_have + v_change.delta < 0 THEN
        p_rejection := 'insufficient_funds';
        p_rejection_detail := jsonb_build_object('asset_type', v_change.type, 'asset_id', v_change.id,
          'required', -v_change.delta, 'balance', v_have);
        EXIT;
      END IF;
      IF v_change.delta > 0 AND v_have > 9223372036854775807 - v_change.delta THEN
        p_rejection := 'limit_exceeded';
        p_rejection_detail := jsonb_build_object('asset_type', v_change.type, 'asset_id', v_change.id,
          'held', v_have, 'reason', 'balance would overflow');
        EXIT;
      END IF;
      -- A clamped change was cut to fit above; if the player already holds
      -- more than max (a limit lowered since), it grants nothing rather than
      -- refusing a paid purchase.
      IF NOT v_change.clamp AND v_change.max IS NOT NULL AND v_have + v_change.delta > v_change.max THEN
        p_rejection := coalesce(v_change.exceed, 'limit_exceeded');
        p_rejection_detail := jsonb_build_object('asset_type', v_change.type, 'asset_id', v_change.id,
          'held', v_have, 'max', v_change.max);
        EXIT;
      END IF;
      IF v_delta <> 0 THEN
        v_effective := v_effective || jsonb_build_object('type', v_change.type, 'id', v_change.id, 'delta', v_delta);
      END IF;
    END LOOP;
    p_changes := v_effective;
  END IF;

  IF p_rejection IS NOT NULL THEN
    v_response := coalesce(p_rejection_detail, '{}'::jsonb);
    UPDATE idempotency_keys i SET outcome = p_rejection, response = v_response
    WHERE i.player_id = p_player AND i.scope = p_scope AND i.key = p_key;
    RETURN QUERY SELECT p_rejection, v_response, false, v_version, NULL::jsonb;
    RETURN;
  END IF;

  IF jsonb_array_length(p_changes) = 0 THEN
    -- Nothing to move (a clamped grant of something already held): the
    -- request still succeeds and is remembered, without a ledger transaction.
    v_response := coalesce(p_result, '{}'::jsonb) || jsonb_build_object(
      'balances', coinop_player_balances(p_player, p_currencies), 'entitlements', '[]'::jsonb);
    UPDATE idempotency_keys i SET outcome = 'ok', response = v_response
    WHERE i.player_id = p_player AND i.scope = p_scope AND i.key = p_key;
    RETURN QUERY SELECT 'ok'::text, v_response, false, v_version, NULL::jsonb;
    RETURN;
  END IF;

  INSERT INTO ledger_transactions (player_id, kind, reference, metadata)
  VALUES (p_player, p_kind, p_reference, coalesce(p_metadata, '{}'::jsonb))
  RETURNING id INTO v_tx;

  INSERT INTO ledger_entries (transaction_id, account, asset_type, asset_id, amount)
  SELECT v_tx, e.account, c.type, c.id, e.amount
  FROM jsonb_to_recordset(p_changes) AS c(type text, id text, delta bigint)
  CROSS JOIN LATERAL (VALUES ('player:' || p_player, c.delta), (p_counterparty, -c.delta)) AS e(account, amount);

  -- Debits as plain updates: a CHECK is evaluated on an INSERT's proposed row
  -- even when ON CONFLICT turns it into an update, so a negative proposed row
  -- would fail. The guard was checked above; balances_non_negative backs it.
  UPDATE balances b SET quantity = b.quantity + c.delta
  FROM jsonb_to_recordset(p_changes) AS c(type text, id text, delta bigint)
  WHERE c.delta < 0 AND b.player_id = p_player AND b.asset_type = c.type AND b.asset_id = c.id;

  INSERT INTO balances AS b (player_id, asset_type, asset_id, quantity)
  SELECT p_player, c.type, c.id, c.delta
  FROM jsonb_to_recordset(p_changes) AS c(type text, id text, delta bigint)
  WHERE c.delta > 0
  ON CONFLICT (player_id, asset_type, asset_id) DO UPDATE SET quantity = b.quantity + excluded.quantity;

  UPDATE players p SET version = v_tx WHERE p.player_id = p_player;

  v_response := coalesce(p_result, '{}'::jsonb) || jsonb_build_object(
    'balances', coinop_player_balances(p_player, p_currencies),
    'entitlements', (
      SELECT coalesce(jsonb_agg(jsonb_build_object('item_id', b.asset_id, 'quantity', b.quantity) ORDER BY b.asset_id), '[]'::jsonb)
      FROM jsonb_to_recordset(p_changes) AS c(type text, id text, delta bigint)
      JOIN balances b ON b.player_id = p_player AND b.asset_type = 'item' AND b.asset_id = c.id
      WHERE c.type = 'item' AND c.delta > 0));

  UPDATE idempotency_keys i SET outcome = 'ok', response = v_response
  WHERE i.player_id = p_player AND i.scope = p_scope AND i.key = p_key;

  RETURN QUERY SELECT 'ok'::text, v_response, false, v_tx, coinop_holdings(p_player);
END $$;
