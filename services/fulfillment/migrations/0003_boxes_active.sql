-- Boxes become setup data (docs/fulfillment.md "Setup"): a box is never deleted (parcels refer to
-- it), `active = false` keeps it out of packing. Every box is active, as today.
ALTER TABLE boxes ADD COLUMN active boolean NOT NULL DEFAULT true;
