-- Issue 18: the inventory tick (every 5 s) looks for backorders older than their store's
-- limit. With the limit per store, the look joined every waiting order to its store's policy
-- and compared: 12,000 backorders read on every tick of the benchmark database (30-80 ms),
-- whatever was due. With the store first, each store's due backorders are one index range
-- (store_policies are few), and the stores on the default policy one range of the index
-- below, which ends at the default limit (store.expired_backorders).
CREATE INDEX IF NOT EXISTS orders_backordered_by_store ON orders (store, created_at)
    WHERE status = 'backordered';
