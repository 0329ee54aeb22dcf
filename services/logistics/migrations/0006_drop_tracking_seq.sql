-- Tracking numbers derive from the parcel id (docs/logistics.md), so a re-read after a restore
-- gives the same ones; the sequence that numbered them before is no longer read by anything.
DROP SEQUENCE IF EXISTS tracking_seq;
