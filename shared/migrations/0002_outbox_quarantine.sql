-- Rows the broker refuses for good (record too large, invalid record) are quarantined instead of
-- retried forever: kept with the error, out of the relay's way, visible in
-- shopkeeper_outbox_quarantined, /readyz and `shopkeeper outbox quarantined`. An operator
-- releases one (to be tried again, e.g. after raising the broker's limit) or leaves it as the
-- record of what was not published. Pruning deletes published rows only, never these.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS quarantined_at timestamptz;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS error text;
DROP INDEX IF EXISTS outbox_unsent;
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id)
    WHERE sent_at IS NULL AND quarantined_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_quarantined ON outbox (id) WHERE quarantined_at IS NOT NULL;

CREATE OR REPLACE FUNCTION outbox_claim(batch integer)
    RETURNS TABLE (id bigint, topic text, key text, value bytea, headers jsonb,
                   created_at timestamptz)
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    free integer[];
BEGIN
    SELECT coalesce(array_agg(b), '{}') INTO free
      FROM (SELECT DISTINCT outbox_bucket(o.key) AS b FROM outbox o
             WHERE o.sent_at IS NULL AND o.quarantined_at IS NULL) pending
     WHERE pg_try_advisory_xact_lock(hashtext(current_schema()), b);
    IF cardinality(free) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT o.id, o.topic, o.key, o.value, o.headers, o.created_at FROM outbox o
         WHERE o.sent_at IS NULL AND o.quarantined_at IS NULL AND outbox_bucket(o.key) = ANY(free)
         ORDER BY o.id LIMIT batch;
END $$;
