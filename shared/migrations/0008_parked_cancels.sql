-- A cancellation handed down the chain (intake -> inventory -> fulfillment -> logistics,
-- docs/cancellation.md) may reach a service before the order does: the order comes on another
-- topic, and nothing orders two topics. The service parks it whole here and handles it in the
-- run that brings the order, right after the order, as if it had come second: the same events
-- and ids whichever topic was read first (a restore or a replay re-reads the two in time order;
-- live, a busy consumer may not). Services that hand no cancellation on leave it empty.
-- Orders an older version remembered as cancelled on arrival (a row with no snapshot) stay so.
CREATE TABLE parked_cancels (
    order_id  uuid PRIMARY KEY,
    event     text NOT NULL,  -- the OrderCancelRequested, as JSON
    parked_at timestamptz NOT NULL DEFAULT now()
);
