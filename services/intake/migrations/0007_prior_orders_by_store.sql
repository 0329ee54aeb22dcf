-- Issue 18: the duplicate and merge checks read a store's orders from the same customer or to
-- the same address in a window (store.prior_orders_read). The indexes of 0002 had no store, so
-- an address many stores share (a parcel forwarder, a marketplace's pickup point; the load
-- generator's few addresses) had every store's orders of the window read and filtered:
-- 22,600 rows and 6 ms per run of orders on the benchmark's database. With the store first,
-- each side of the check is one backward index scan that stops after the newest 200.
-- Nothing else reads the old indexes.
DROP INDEX IF EXISTS orders_by_customer;
DROP INDEX IF EXISTS orders_by_address;
CREATE INDEX orders_by_store_customer ON orders (store, customer_id, received_at);
CREATE INDEX orders_by_store_address ON orders (store, address_key, received_at);
