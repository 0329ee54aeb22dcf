-- Facts partitioned by month of `occurred_at` (declarative partitioning), so a month of old facts
-- is dropped as a table (retention: jobs.maintain_partitions, docs/analytics.md) instead of
-- deleted row by row. Reports never read facts (they read the rollups); an order's facts are read
-- by its key (facts_order, one index per partition) when it is folded for the first time.
--
-- The primary key must hold the partition key, so it is (event_id, occurred_at): the same event
-- re-sent keeps both. Dedupe by event_id alone is the inbox's, and the fold's (by event id).
ALTER TABLE facts RENAME TO facts_before_partitioning;
ALTER INDEX facts_pkey RENAME TO facts_before_partitioning_pkey;
ALTER INDEX facts_order RENAME TO facts_before_partitioning_order;
ALTER INDEX facts_tracking RENAME TO facts_before_partitioning_tracking;

CREATE TABLE facts (
    event_id        uuid NOT NULL,
    kind            text NOT NULL,
    order_key       text,
    tracking_number text,
    occurred_at     timestamptz NOT NULL,
    body            jsonb NOT NULL,
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX facts_order ON facts (order_key) WHERE order_key IS NOT NULL;
CREATE INDEX facts_tracking ON facts (tracking_number) WHERE tracking_number IS NOT NULL;
-- Facts dated outside the months created (a carrier clock years off) land here.
CREATE TABLE facts_default PARTITION OF facts DEFAULT;

-- The partition of the month holding `month` (facts_YYYY_MM), if missing: rows of that month in
-- the default partition move into it first, as ATTACH requires. True when it was created.
CREATE FUNCTION facts_month(month date) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := date_trunc('month', month::timestamp) AT TIME ZONE 'UTC';
    hi   timestamptz := (date_trunc('month', month::timestamp) + interval '1 month')
                        AT TIME ZONE 'UTC';
    part text := 'facts_' || to_char(month, 'YYYY_MM');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE facts INCLUDING DEFAULTS)', part);
    EXECUTE format('WITH moved AS (DELETE FROM facts_default WHERE occurred_at >= %L'
                   ' AND occurred_at < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   lo, hi, part);
    EXECUTE format('ALTER TABLE facts ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    RETURN true;
END $$;

DO $$
DECLARE
    m date := date_trunc('month', greatest(
        coalesce((SELECT min(occurred_at) FROM facts_before_partitioning), now()),
        now() - interval '36 months'))::date;
BEGIN
    WHILE m <= now() + interval '2 months' LOOP
        PERFORM facts_month(m);
        m := (m + interval '1 month')::date;
    END LOOP;
END $$;

INSERT INTO facts SELECT * FROM facts_before_partitioning;
DROP TABLE facts_before_partitioning;
