-- The relay's round in one round trip (issue 18): `outbox_claim` first marks sent the rows the
-- previous round published (their acks are in: shared/outbox.py keeps their ids until then),
-- then claims as before. A relay that stops between the two publishes those rows again when it
-- leads next, and consumers drop them (inbox): the same at-least-once as a failed mark before.
-- The one-argument form stays for instances of the previous release during a rolling upgrade.
CREATE OR REPLACE FUNCTION outbox_claim(batch integer, sent bigint[])
    RETURNS TABLE (id bigint, topic text, key text, value bytea, headers jsonb,
                   created_at timestamptz)
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    free integer[];
BEGIN
    IF cardinality(sent) > 0 THEN
        UPDATE outbox o SET sent_at = now() WHERE o.id = ANY(sent) AND o.sent_at IS NULL;
    END IF;
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
