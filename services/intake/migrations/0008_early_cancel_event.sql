-- A cancellation that arrives before its order is kept whole (its event, as JSON), so that when
-- the order arrives it is reviewed and the cancellation then handled exactly as if it had come
-- second: the same statuses and the same event ids, whichever of the two topics was read first
-- (a restore or a replay re-reads them in time order; live, a busy consumer may not). Rows kept
-- before this migration have no event and keep the old rule: the order arrives cancelled.
ALTER TABLE early_cancellations ADD COLUMN event text;
