-- The console's own data: its users, their sessions, login attempts and the audit trail of
-- everything they did. It never holds another service's data: it acts through their HTTP APIs.
CREATE TABLE users (
    user_id       bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._@-]{1,64}$'),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'manager', 'support', 'warehouse', 'viewer')),
    locale        text,
    time_zone     text NOT NULL DEFAULT 'UTC',
    active        boolean NOT NULL DEFAULT true,
    must_change   boolean NOT NULL DEFAULT false,
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);

-- The cookie carries a random token; only its SHA-256 is stored, so a read of this table does
-- not hand out sessions.
CREATE TABLE sessions (
    token_hash  bytea PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE login_attempts (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    client_ip text NOT NULL,
    username  text NOT NULL,
    ok        boolean NOT NULL
);
CREATE INDEX login_attempts_ip ON login_attempts (client_ip, at);

CREATE TABLE audit (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    role     text,
    action   text NOT NULL,
    target   text,
    outcome  text NOT NULL,
    before   jsonb,
    after    jsonb,
    detail   text
);
CREATE INDEX audit_at ON audit (at DESC);
CREATE INDEX audit_target ON audit (target);
