-- The outbox's per-key order rule (shared/outbox.py, module docstring) in one place, and the
-- relay's read in one round trip instead of four (BEGIN, lock the free buckets, read their rows,
-- COMMIT).

-- The bucket of a row's key: writers share-lock it until commit, the relay takes it exclusively.
-- An inlined SQL function: no cost over writing the expression out.
CREATE OR REPLACE FUNCTION outbox_bucket(k text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT hashtext(coalesce(k, '')) & 1023 $$;

-- The rows the relay may publish now, oldest first: those of the buckets it can lock exclusively
-- (no writer of the bucket in flight). The locks are transaction-level, so they last until the
-- calling statement's transaction ends, after the rows are read. The rows are read by a second
-- statement: a VOLATILE PL/pgSQL function takes a new snapshot per statement (READ COMMITTED),
-- so every row a finished writer of a locked bucket committed is seen, and a new writer waits
-- for the lock, so its row gets a higher id and a later round.
CREATE OR REPLACE FUNCTION outbox_claim(batch integer)
    RETURNS TABLE (id bigint, topic text, key text, value bytea, headers jsonb,
                   created_at timestamptz)
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    free integer[];
BEGIN
    SELECT coalesce(array_agg(b), '{}') INTO free
      FROM (SELECT DISTINCT outbox_bucket(o.key) AS b FROM outbox o
             WHERE o.sent_at IS NULL) pending
     WHERE pg_try_advisory_xact_lock(hashtext(current_schema()), b);
    IF cardinality(free) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT o.id, o.topic, o.key, o.value, o.headers, o.created_at FROM outbox o
         WHERE o.sent_at IS NULL AND outbox_bucket(o.key) = ANY(free)
         ORDER BY o.id LIMIT batch;
END $$;
