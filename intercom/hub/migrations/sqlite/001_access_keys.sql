CREATE TABLE access_keys (
    id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
