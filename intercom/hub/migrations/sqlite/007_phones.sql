-- Paired phones (intercom.hub.pairing): each is an access key of the group "phones" (same id),
-- reached by the SHA-256 of its one-time code, then of its credential; the secrets themselves
-- are never stored.
CREATE TABLE phones (
    id TEXT PRIMARY KEY REFERENCES access_keys (id),
    identity TEXT NOT NULL,
    name TEXT NOT NULL,
    code_hash TEXT UNIQUE,
    code_expires_at REAL NOT NULL,
    credential_hash TEXT UNIQUE,
    device TEXT,
    created_at REAL NOT NULL,
    paired_at REAL,
    last_token_at REAL,
    revoked_at REAL
);
CREATE INDEX phones_by_identity ON phones (identity);
