-- The call log. Rows are the pydantic models of intercom.hub.records as JSON; the columns
-- beside the body are what lists are filtered and ordered by.
CREATE TABLE calls (id TEXT PRIMARY KEY, parent TEXT, created_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX calls_by_time ON calls (created_at);
CREATE TABLE legs (id TEXT PRIMARY KEY, parent TEXT, created_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX legs_by_call ON legs (parent, created_at);
CREATE TABLE recordings (id TEXT PRIMARY KEY, parent TEXT, created_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX recordings_by_leg ON recordings (parent, created_at);
CREATE TABLE webhooks (id TEXT PRIMARY KEY, parent TEXT, created_at REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE webhook_deliveries (id TEXT PRIMARY KEY, parent TEXT, created_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX deliveries_by_time ON webhook_deliveries (created_at);
