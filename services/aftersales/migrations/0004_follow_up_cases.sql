-- Follow-up cases have a life (docs/aftersales.md "Follow-up cases"): assigned to a person,
-- commented, closed with a resolution, reopened. Every step is a row of follow_up_notes.
ALTER TABLE follow_ups
    ADD COLUMN assignee   text,
    ADD COLUMN resolution text CHECK (resolution IN (
        'resolved', 'refunded', 'replaced', 'no_action', 'unreachable')),
    ADD COLUMN closed_at  timestamptz,
    ADD COLUMN closed_by  text,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT follow_ups_closed_has_resolution CHECK (
        (status = 'closed') = (resolution IS NOT NULL AND closed_at IS NOT NULL));

CREATE INDEX follow_ups_by_status ON follow_ups (status, created_at);

CREATE TABLE follow_up_notes (
    id        bigserial PRIMARY KEY,
    follow_up bigint NOT NULL REFERENCES follow_ups (id),
    kind      text NOT NULL CHECK (kind IN ('assigned', 'comment', 'closed', 'reopened')),
    author    text NOT NULL,
    body      text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX follow_up_notes_by_case ON follow_up_notes (follow_up, id);
