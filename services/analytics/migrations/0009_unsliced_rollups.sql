-- Rollups without the slice, for the reports with no store, country, warehouse or carrier filter:
-- the dashboard's default view (docs/analytics.md, "Rollups without the slice"). Their rows are
-- the sums over every slice of r_sku and r_latency, 7 to 10 times fewer rows for a range: the
-- best sellers and the latency percentiles of the last 30 days read 12,000 and 4,000 rows
-- instead of 84,000 and 41,000 on a realistic million-order history.
--
-- Triggers keep them, in the statement that writes the sliced rows: every writer (the fold job,
-- the history generator, an instance still running the code before this migration, an
-- operator's SQL) keeps them equal to the sums, and the sliced tables stay the one source.
-- The sliced tables are only ever inserted into or updated (additive upserts), never deleted.

CREATE TABLE r_sku_all (
    day date NOT NULL, sku text NOT NULL,
    units int NOT NULL DEFAULT 0, revenue numeric(16, 2) NOT NULL DEFAULT 0,
    orders int NOT NULL DEFAULT 0, shipped_units int NOT NULL DEFAULT 0,
    returned int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, sku)
);

CREATE TABLE r_latency_all (
    day date NOT NULL, metric text NOT NULL, bucket int NOT NULL,
    n int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, metric, bucket)
);

-- What a statement added to r_sku, summed per (day, sku); rows in key order, so two writers
-- lock them in the same order.
CREATE FUNCTION r_sku_all_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO r_sku_all AS a (day, sku, units, revenue, orders, shipped_units, returned)
        SELECT day, sku, sum(units), sum(revenue), sum(orders), sum(shipped_units), sum(returned)
        FROM new_rows GROUP BY day, sku ORDER BY day, sku
        ON CONFLICT (day, sku) DO UPDATE SET units = a.units + EXCLUDED.units,
            revenue = a.revenue + EXCLUDED.revenue, orders = a.orders + EXCLUDED.orders,
            shipped_units = a.shipped_units + EXCLUDED.shipped_units,
            returned = a.returned + EXCLUDED.returned;
    ELSE
        INSERT INTO r_sku_all AS a (day, sku, units, revenue, orders, shipped_units, returned)
        SELECT n.day, n.sku, sum(n.units - o.units), sum(n.revenue - o.revenue),
               sum(n.orders - o.orders), sum(n.shipped_units - o.shipped_units),
               sum(n.returned - o.returned)
        FROM new_rows n JOIN old_rows o USING (day, slice_id, sku)
        GROUP BY n.day, n.sku ORDER BY n.day, n.sku
        ON CONFLICT (day, sku) DO UPDATE SET units = a.units + EXCLUDED.units,
            revenue = a.revenue + EXCLUDED.revenue, orders = a.orders + EXCLUDED.orders,
            shipped_units = a.shipped_units + EXCLUDED.shipped_units,
            returned = a.returned + EXCLUDED.returned;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION r_latency_all_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO r_latency_all AS a (day, metric, bucket, n)
        SELECT day, metric, bucket, sum(n) FROM new_rows
        GROUP BY day, metric, bucket ORDER BY day, metric, bucket
        ON CONFLICT (day, metric, bucket) DO UPDATE SET n = a.n + EXCLUDED.n;
    ELSE
        INSERT INTO r_latency_all AS a (day, metric, bucket, n)
        SELECT nw.day, nw.metric, nw.bucket, sum(nw.n - o.n)
        FROM new_rows nw JOIN old_rows o USING (day, slice_id, metric, bucket)
        GROUP BY nw.day, nw.metric, nw.bucket ORDER BY nw.day, nw.metric, nw.bucket
        ON CONFLICT (day, metric, bucket) DO UPDATE SET n = a.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;

-- A trigger with transition tables has one event: one for the inserts, one for the updates
-- (an upsert fires both, each with its own rows).
CREATE TRIGGER r_sku_all_on_insert AFTER INSERT ON r_sku REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION r_sku_all_add();
CREATE TRIGGER r_sku_all_on_update AFTER UPDATE ON r_sku
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION r_sku_all_add();
CREATE TRIGGER r_latency_all_on_insert AFTER INSERT ON r_latency
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION r_latency_all_add();
CREATE TRIGGER r_latency_all_on_update AFTER UPDATE ON r_latency
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION r_latency_all_add();

-- The history so far. Writers of r_sku and r_latency wait for this migration's transaction,
-- which holds their locks from the triggers' creation: no row is counted twice or missed.
INSERT INTO r_sku_all
SELECT day, sku, sum(units), sum(revenue), sum(orders), sum(shipped_units), sum(returned)
FROM r_sku GROUP BY day, sku;
INSERT INTO r_latency_all SELECT day, metric, bucket, sum(n) FROM r_latency
GROUP BY day, metric, bucket;
ANALYZE r_sku_all;
ANALYZE r_latency_all;
