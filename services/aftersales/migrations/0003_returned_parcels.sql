-- Refused delivery / returned to sender, and cancellations after shipping (docs/aftersales.md).
-- `closed`: a request that ends with no refund of its own: a cancellation-after-shipping return
-- settled by the parcel coming back to sender, or a returned parcel whose goods were already
-- refunded or replaced by another request (or never paid for).
ALTER TABLE requests DROP CONSTRAINT requests_status_check;
ALTER TABLE requests ADD CONSTRAINT requests_status_check CHECK (status IN (
    'authorized', 'rejected', 'review', 'received', 'refunded', 'inspection', 'replaced',
    'closed'));
