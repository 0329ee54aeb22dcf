-- order_state.contrib NULL: what the order contributes is not stored (the history generator
-- writes none, to write a million orders in minutes); the first event of such an order
-- recomputes it from the order's facts before adding its own change (store.fold_in).
ALTER TABLE order_state ALTER COLUMN contrib DROP NOT NULL, ALTER COLUMN contrib DROP DEFAULT;
