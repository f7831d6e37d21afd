-- Issue 20: the tables a database shared by several hubs (PostgreSQL) needs, kept here too so that
-- both backends run the same queries. Each row names the hub that wrote it ('' on a unit, whose
-- database is its hub's alone): a hub's start-up ends the calls it carried, not another's, and
-- resends its own deliveries. Each hub's heartbeat is a row of its own.
ALTER TABLE calls ADD COLUMN hub TEXT NOT NULL DEFAULT '';
ALTER TABLE legs ADD COLUMN hub TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN hub TEXT NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN hub TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries ADD COLUMN hub TEXT NOT NULL DEFAULT '';
CREATE TABLE heartbeats (hub TEXT PRIMARY KEY, alive_at REAL NOT NULL);
INSERT INTO heartbeats (hub, alive_at) SELECT '', alive_at FROM heartbeat;
DROP TABLE heartbeat;
-- When a key was last written: how a hub on a shared database learns of another's key writes.
ALTER TABLE access_keys ADD COLUMN changed_at REAL;
-- The doors' reports (unlock, wrong code, lockout, refused), kept like the call log.
CREATE TABLE unlock_events (
    id TEXT PRIMARY KEY, parent TEXT, created_at REAL NOT NULL, body TEXT NOT NULL, hub TEXT NOT NULL DEFAULT ''
);
CREATE INDEX unlock_events_by_time ON unlock_events (created_at);
-- The location behind a SIP proxy (the proxied registrar): one row per identity and contact.
CREATE TABLE registrations (
    edge TEXT NOT NULL,
    flow TEXT NOT NULL,
    uri TEXT NOT NULL,
    contact TEXT NOT NULL,
    path TEXT NOT NULL,
    identity TEXT,
    key_group TEXT,
    access_key_id TEXT NOT NULL,
    incoming INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    user_agent TEXT,
    hub TEXT NOT NULL,
    PRIMARY KEY (edge, flow, uri)
);
CREATE INDEX registrations_by_identity ON registrations (identity);
CREATE INDEX registrations_by_group ON registrations (key_group);
CREATE INDEX registrations_by_key ON registrations (access_key_id);
CREATE INDEX registrations_by_expiry ON registrations (expires_at);
