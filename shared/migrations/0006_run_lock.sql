-- The run-level lock of shared/locks.py (docs/messaging.md "One lock order per run"), in one round
-- trip and in an order no planner can change: the service's serial lock first (exclusive: the
-- run is alone among runs and may lock whatever it finds while running; shared: it locks only
-- the keys it declared), then, when shared, one transaction-level lock per declared key in the
-- order of the locks themselves (a key's hash), so two runs always take the keys they share in
-- the same order. The key locks use the two-int form under a space of their own per schema,
-- apart from the outbox's bucket locks (hashtext(current_schema()), bucket) and from the one-int
-- named locks (`xact_lock(name)`); a hash collision only makes two keys one lock.
CREATE OR REPLACE FUNCTION run_lock(serial text, exclusive boolean, keys text[])
    RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    space integer := hashtext(current_schema() || ':run-lock');
    k integer;
    n integer := 0;
BEGIN
    IF exclusive THEN
        PERFORM pg_advisory_xact_lock(hashtext(serial));
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(hashtext(serial));
    FOR k IN SELECT DISTINCT hashtext(x) FROM unnest(keys) AS x ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(space, k);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
