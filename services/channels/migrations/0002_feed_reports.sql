-- Amazon's Feeds API processes a feed after accepting it (issue 19): a write-back whose feed is
-- accepted is `submitted` (its feedId and document kept) until the feed's processing report is
-- read; only then `done` or `failed`. A job with a feed_id is never submitted again on its own:
-- it is polled. Existing rows keep their state; the new columns default to "no feed".
ALTER TABLE writebacks DROP CONSTRAINT writebacks_state_check;
ALTER TABLE writebacks ADD CONSTRAINT writebacks_state_check
    CHECK (state IN ('pending', 'submitted', 'done', 'failed', 'skipped'));
ALTER TABLE writebacks
    ADD COLUMN feed_id          text,
    ADD COLUMN feed_document_id text,
    ADD COLUMN feed_type        text,
    -- Amazon's processingStatus as last seen (IN_QUEUE, IN_PROGRESS, DONE, CANCELLED, FATAL).
    ADD COLUMN feed_status      text,
    ADD COLUMN feed_checks      int NOT NULL DEFAULT 0,
    ADD COLUMN submitted_at     timestamptz,
    -- What the processing report said when it was not a plain success (a warning, a duplicate
    -- adjustment recognised as already applied), for operators.
    ADD COLUMN note             text;
CREATE INDEX writebacks_submitted ON writebacks (next_attempt_at) WHERE state = 'submitted';
