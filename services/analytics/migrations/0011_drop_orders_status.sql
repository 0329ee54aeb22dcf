-- `orders_status` (0001) served no query: the counts by status come from the rollups (t_status)
-- and the stuck-orders gauge reads `orders_open_by_age` (0003). Every status change still paid
-- for it, one more index entry per event on the read model's busiest write (issue 18).
DROP INDEX IF EXISTS orders_status;
