-- Facts waiting to be folded into their orders' rollups (issue 21, docs/analytics.md "Rollups").
-- A run of events stores its facts and queues the first-time ones here, in its own transaction;
-- the fold job (jobs.fold_forever) takes them in batches of `seq`, folds each order touched
-- once with all of its queued facts and adds the change to the rollups, deleting what it took
-- in the same transaction. An order whose stages arrive within one pass of the job is folded
-- once instead of once per consumer run. Two instances take disjoint batches (SKIP LOCKED) and
-- lock the orders' state rows in key order, as every other fold does.
CREATE TABLE fold_queue (
    seq       bigserial PRIMARY KEY,
    order_key text NOT NULL,
    fact      jsonb NOT NULL,           -- [kind, event_id, occurred_at, body, tracking_number]
    queued_at timestamptz NOT NULL DEFAULT now()
);

-- Facts queued before this migration do not exist: every fact stored so far was folded in its
-- run's transaction by the code this replaces.
