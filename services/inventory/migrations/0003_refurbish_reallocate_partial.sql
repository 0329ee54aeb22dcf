-- Refurbished returns are their own stock state: counted per (sku, warehouse), never available
-- as new (available stays on_hand - reserved), and moved by ledger rows like every balance.
ALTER TABLE stock ADD COLUMN refurbished int NOT NULL DEFAULT 0
    CONSTRAINT refurbished_not_negative CHECK (refurbished >= 0);
ALTER TABLE ledger ADD COLUMN refurbished_delta int NOT NULL DEFAULT 0;
-- Units a row is about when no balance moves (scrap: the goods never came back into stock).
ALTER TABLE ledger ADD COLUMN units int;

ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check CHECK (kind IN (
    'receipt', 'count', 'damage', 'reserve', 'release', 'commit', 'return', 'substitution',
    'correction', 'return_refurbish', 'scrap', 'shortage'));

-- `reallocating`: a short pick left part of a reserved order without stock; the rest stays
-- reserved (fulfillment holds the order) until a restock covers the missing units.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN (
    'reserved', 'backordered', 'committed', 'cancelled', 'reallocating'));
ALTER TABLE orders
    -- The warehouse whose bin was found short (restock there may refill the missing units).
    ADD COLUMN short_warehouse text,
    -- "ship what is there": the order whose backordered remainder this order is.
    ADD COLUMN continues uuid;
CREATE INDEX orders_continues ON orders (continues) WHERE continues IS NOT NULL;
