-- When the hub was last known alive while calls ran (Storage.mark_alive): a call a crash or a
-- power cut left open is ended at that time at the next start, not at the start's. And the
-- recordings it left running, found at start like the calls (intercom.hub.recordings).
CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), alive_at REAL NOT NULL);
CREATE INDEX recordings_unfinished ON recordings (created_at) WHERE json_extract(body, '$.status') NOT IN ('done');
