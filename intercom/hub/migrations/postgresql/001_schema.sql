-- The schema of SQLite's migrations 001-008 at once (a PostgreSQL database starts at today's
-- tables), with PostgreSQL's types: times are double precision (REAL would be 4 bytes here).
-- Rows of the call log are the pydantic models of intercom.hub.records as JSON text, as on SQLite.
CREATE TABLE access_keys (
    id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION,
    scope TEXT,
    changed_at DOUBLE PRECISION
);
CREATE TABLE call_flows (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE calls (
    id TEXT PRIMARY KEY, parent TEXT, created_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL, hub TEXT NOT NULL
);
CREATE INDEX calls_by_time ON calls (created_at);
CREATE TABLE legs (
    id TEXT PRIMARY KEY, parent TEXT, created_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL, hub TEXT NOT NULL
);
CREATE INDEX legs_by_call ON legs (parent, created_at);
CREATE TABLE recordings (
    id TEXT PRIMARY KEY, parent TEXT, created_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL, hub TEXT NOT NULL
);
CREATE INDEX recordings_by_leg ON recordings (parent, created_at);
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY, parent TEXT, created_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL, hub TEXT NOT NULL
);
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY, parent TEXT, created_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL, hub TEXT NOT NULL
);
CREATE INDEX deliveries_by_time ON webhook_deliveries (created_at);
CREATE TABLE unlock_events (
    id TEXT PRIMARY KEY, parent TEXT, created_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL, hub TEXT NOT NULL
);
CREATE INDEX unlock_events_by_time ON unlock_events (created_at);
-- What a hub's start-up looks for: its own unfinished rows (the WHERE of Storage.unfinished).
CREATE INDEX deliveries_pending ON webhook_deliveries (hub, created_at) WHERE (body::jsonb ->> 'status') = 'pending';
CREATE INDEX calls_unfinished ON calls (hub, created_at) WHERE (body::jsonb ->> 'status') NOT IN ('ended');
CREATE INDEX legs_unfinished ON legs (hub, created_at)
    WHERE (body::jsonb ->> 'status') NOT IN ('busy', 'failed', 'hangup', 'no_answer');
CREATE INDEX recordings_unfinished ON recordings (hub, created_at) WHERE (body::jsonb ->> 'status') NOT IN ('done');
CREATE TABLE heartbeats (hub TEXT PRIMARY KEY, alive_at DOUBLE PRECISION NOT NULL);
CREATE TABLE phones (
    id TEXT PRIMARY KEY REFERENCES access_keys (id),
    identity TEXT NOT NULL,
    name TEXT NOT NULL,
    code_hash TEXT UNIQUE,
    code_expires_at DOUBLE PRECISION NOT NULL,
    credential_hash TEXT UNIQUE,
    device TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    paired_at DOUBLE PRECISION,
    last_token_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION
);
CREATE INDEX phones_by_identity ON phones (identity);
CREATE TABLE registrations (
    edge TEXT NOT NULL,
    flow TEXT NOT NULL,
    uri TEXT NOT NULL,
    contact TEXT NOT NULL,
    path TEXT NOT NULL,
    identity TEXT,
    key_group TEXT,
    access_key_id TEXT NOT NULL,
    incoming BOOLEAN NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    user_agent TEXT,
    hub TEXT NOT NULL,
    PRIMARY KEY (edge, flow, uri)
);
CREATE INDEX registrations_by_identity ON registrations (identity);
CREATE INDEX registrations_by_group ON registrations (key_group);
CREATE INDEX registrations_by_key ON registrations (access_key_id);
CREATE INDEX registrations_by_expiry ON registrations (expires_at);
