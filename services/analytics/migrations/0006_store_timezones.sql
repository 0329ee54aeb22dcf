-- A store's day starts at midnight in the store's own time zone (a Shenzhen seller's day starts
-- at 00:00 Asia/Shanghai, not UTC): rollups' `day` is the day an order started on there.
-- A store without a row here counts in UTC, as before this migration.
CREATE TABLE store_timezone (
    store       text PRIMARY KEY,
    tz          text NOT NULL,             -- an IANA name, checked by the API (zoneinfo)
    changed_at  timestamptz NOT NULL DEFAULT now(),
    -- The store's orders are being re-folded into the new zone's days (jobs.refold_timezones):
    -- the last order key done ('' before the first); NULL once all are.
    refold_after text
);

-- The zone an order's stored contribution was computed in (NULL: UTC), so a re-fold subtracts
-- the right rows when the store's zone changed.
ALTER TABLE order_state ADD COLUMN tz text;

-- RFM and cohorts filter and group customers by the store's day too: r_customer gets the day,
-- first in its key (the range index). Existing rows were counted in UTC.
ALTER TABLE r_customer ADD COLUMN day date;
UPDATE r_customer SET day = (started_at AT TIME ZONE 'UTC')::date;
ALTER TABLE r_customer ALTER COLUMN day SET NOT NULL;
ALTER TABLE r_customer DROP CONSTRAINT r_customer_pkey;
ALTER TABLE r_customer ADD PRIMARY KEY (day, started_at, slice_id, customer_id, currency);
-- Fresh statistics for the new key, or the planner may not use it for a range of days.
ANALYZE r_customer;
