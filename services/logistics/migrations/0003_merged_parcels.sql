-- fulfillment merges one buyer's orders into one parcel: the shipment row belongs to the first
-- order; every other order that the parcel carries is linked here, so tracking reaches them all.
CREATE TABLE parcel_orders (
    parcel_id text NOT NULL REFERENCES shipments,
    order_id  uuid NOT NULL REFERENCES orders,
    PRIMARY KEY (parcel_id, order_id)
);
CREATE INDEX parcel_orders_order ON parcel_orders (order_id);
