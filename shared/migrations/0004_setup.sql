-- Who changed the shop's setup, and how (shared/setup.py): one row per change that changed
-- something, written with the change and its `setup.changed` event. Never pruned: setup changes
-- are few and this is the audit log.
CREATE TABLE IF NOT EXISTS setup_audit (
    id         bigserial PRIMARY KEY,
    section    text NOT NULL,
    key        text NOT NULL,
    action     text NOT NULL CHECK (action IN ('created', 'updated', 'deleted')),
    before     jsonb,
    after      jsonb,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    event_id   uuid NOT NULL
);
CREATE INDEX IF NOT EXISTS setup_audit_entry ON setup_audit (section, key, id);
