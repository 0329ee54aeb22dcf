-- Refilling after a restock reads the waiting orders, short-picked ones included: without an index
-- matching that predicate every restock read every order inventory ever saw (a sequential scan
-- of 22,000 rows per restock after a few benchmark runs, growing with the shop).
CREATE INDEX IF NOT EXISTS orders_waiting ON orders (created_at, order_id)
    WHERE status IN ('backordered', 'reallocating');
