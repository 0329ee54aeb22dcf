-- Versions of the reference data a service caches across units of work (shared/reference.py,
-- docs/messaging.md "Reference data cached across runs"). One row per cached name (say
-- `fulfillment.boxes`); any write to a table the name depends on sets the row's version to a
-- fresh number of `reference_version_seq`, in the writer's transaction, through a statement
-- trigger that `reference_watch` puts on the table. A sequence never hands out a number twice
-- (not even one a rolled-back transaction drew), so a version seen once means one committed
-- state of the tables forever. Nothing here is read by hand; safe on an existing database
-- (creates only).
CREATE SEQUENCE IF NOT EXISTS reference_version_seq;

CREATE TABLE IF NOT EXISTS reference_versions (
    name    text PRIMARY KEY,
    version bigint NOT NULL,
    -- the transaction that set `version` (a unit of work that changed the data itself reads it
    -- afresh instead of from the cache); NULL when set by `reference_watch`
    writer  xid8
);

-- The statement trigger on every table a cached name depends on (TG_ARGV[0]: the name). For
-- each statement that may have changed the table (INSERT, UPDATE, DELETE, TRUNCATE, whatever
-- their row count), in the writer's transaction. Schema-qualified: the writer's search_path may
-- be anything.
CREATE OR REPLACE FUNCTION reference_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seq text := quote_ident(TG_TABLE_SCHEMA) || '.reference_version_seq';
BEGIN
    EXECUTE format('INSERT INTO %I.reference_versions (name, version, writer)'
                   ' VALUES ($1, nextval(%L), pg_current_xact_id())'
                   ' ON CONFLICT (name) DO UPDATE SET version = nextval(%L),'
                   ' writer = pg_current_xact_id()', TG_TABLE_SCHEMA, seq, seq)
        USING TG_ARGV[0];
    RETURN NULL;
END $$;

-- Makes sure every table of `tables` (in the caller's schema) bumps `entry`'s version on any
-- write, and that `entry` has a version row. Returns NULL when all was there already (the usual
-- case: one catalogue lookup, no lock). Otherwise it locks the tables against writes until the
-- caller's transaction ends (SHARE ROW EXCLUSIVE: reads go on), creates what is missing and
-- returns the entry's version: what the caller reads of the tables before it commits is exactly
-- that version, and may be cached once (and only if) it has committed, with the triggers.
-- Called by the cache once per process and name (shared/reference.py).
CREATE OR REPLACE FUNCTION reference_watch(entry text, tables text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    trig text := 'reference_' || entry;
    t text;
BEGIN
    FOREACH t IN ARRAY tables LOOP
        IF to_regclass(t) IS NULL THEN
            RAISE EXCEPTION 'reference data % depends on table %, which does not exist', entry, t;
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM reference_versions WHERE name = entry)
       AND NOT EXISTS (SELECT 1 FROM unnest(tables) AS x(t)
                       WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g
                                         WHERE g.tgrelid = to_regclass(x.t)
                                           AND g.tgname = trig)) THEN
        RETURN NULL;
    END IF;
    -- Two instances starting together: one creates, the other waits and finds it done.
    PERFORM pg_advisory_xact_lock(hashtext('reference_watch'));
    FOREACH t IN ARRAY tables LOOP
        EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', to_regclass(t));
    END LOOP;
    FOREACH t IN ARRAY tables LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger g
                       WHERE g.tgrelid = to_regclass(t) AND g.tgname = trig) THEN
            EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
                           ' FOR EACH STATEMENT EXECUTE FUNCTION reference_changed(%L)',
                           trig, to_regclass(t), entry);
        END IF;
    END LOOP;
    INSERT INTO reference_versions (name, version)
        VALUES (entry, nextval('reference_version_seq')) ON CONFLICT (name) DO NOTHING;
    RETURN (SELECT version FROM reference_versions WHERE name = entry);
END $$;
