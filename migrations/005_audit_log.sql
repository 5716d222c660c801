-- The audit log: who changed what through the admin API, with the state
-- before and after and the request that did it. Every row is written by the
-- SQL function coinop_audit inside the transaction of the change it records,
-- so a change and its audit row commit together or not at all.
--
-- Rows can only be added: triggers refuse UPDATE, DELETE and TRUNCATE, for
-- the application's role as for any other. (A table owner can still drop the
-- triggers; README "Audit log" shows how to run the application as a role
-- that does not own the table.)
CREATE TABLE audit_log (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  actor      text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
  action     text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
  target     text NOT NULL CHECK (length(target) <= 500),
  before     jsonb,
  after      jsonb,
  request_id text NOT NULL DEFAULT ''
);
-- The filters of GET /admin/v1/audit-log, each newest first.
CREATE INDEX audit_log_actor ON audit_log (actor, id DESC);
CREATE INDEX audit_log_action ON audit_log (action text_pattern_ops, id DESC);
CREATE INDEX audit_log_target ON audit_log (target text_pattern_ops, id DESC);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TRIGGER audit_log_immutable BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION coinop_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION coinop_refuse_change();

-- coinop_audit records one admin write. Call it in the same transaction as
-- the change: SELECT coinop_audit(actor, action, target, before, after, request_id).
-- actor: who (for example 'key:alice' or 'admin-token'); action: what, as
-- 'area.verb' (for example 'catalog.publish', 'player.grant'); target: the
-- changed thing as a path (for example 'catalog/versions/7', 'players/p1');
-- before and after: its state around the change, NULL when it did not exist;
-- request_id: the X-Request-Id of the request, NULL or '' when there is none.
CREATE FUNCTION coinop_audit(actor text, action text, target text, before jsonb, after jsonb, request_id text)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO audit_log (actor, action, target, before, after, request_id)
  VALUES ($1, $2, $3, $4, $5, coalesce($6, ''))
$$;
