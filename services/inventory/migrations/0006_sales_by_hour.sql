-- Issue 18: the low-stock pass (every 30 s) summed every commit of the last 30 days from the
-- ledger, twice per SKU (7 and 30 days): 436 ms a pass on a benchmark database with 146,000
-- commits in the window, a cost that grows with the shop's sales rather than with what changed.
-- Sales are now kept by the hour: one row per SKU and hour (4,140 rows for those 146,000).
-- A statement trigger keeps them from the ledger's inserts, in the writer's transaction, so
-- every writer (handlers, the admin API, a repair, direct SQL) keeps them; the ledger is
-- append-only (its rules refuse UPDATE and DELETE), so inserts are all there is to follow.
CREATE TABLE sales_hourly (
    sku text NOT NULL,
    hour timestamptz NOT NULL,       -- the UTC hour the commits fell in
    units bigint NOT NULL,           -- units committed (shipped) in it
    PRIMARY KEY (sku, hour)
);

INSERT INTO sales_hourly (sku, hour, units)
SELECT sku, date_trunc('hour', created_at, 'UTC'), -sum(on_hand_delta)
FROM ledger WHERE kind = 'commit' GROUP BY 1, 2;

CREATE FUNCTION sales_hourly_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- In key order: two transactions adding to the same hours lock the rows in one order.
    INSERT INTO sales_hourly AS s (sku, hour, units)
    SELECT sku, date_trunc('hour', created_at, 'UTC'), -sum(on_hand_delta)
    FROM added WHERE kind = 'commit' GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (sku, hour) DO UPDATE SET units = s.units + EXCLUDED.units;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_sales_hourly AFTER INSERT ON ledger
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION sales_hourly_add();
