-- The messaging tables every service has in its own schema: inbox (dedupe by event_id, in the
-- handler's transaction) and outbox (events written in the handler's transaction, published by the
-- relay). Applied before the service's own migrations.
CREATE TABLE IF NOT EXISTS inbox (
    event_id    uuid PRIMARY KEY,
    topic       text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL,
    key        text,
    value      bytea NOT NULL,
    headers    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- Wake the relay at commit time; it also polls, so a lost notification only delays.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_' || current_schema(), '');
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
