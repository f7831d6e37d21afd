-- Start-up resumes only the deliveries still pending: a partial index finds them without
-- reading (and parsing) every delivered one.
-- So do the calls and legs a stopped hub left open: the same WHERE as Storage.unfinished (the
-- statuses sorted), which SQLite needs word for word to use an index this partial.
CREATE INDEX deliveries_pending ON webhook_deliveries (created_at) WHERE json_extract(body, '$.status') = 'pending';
CREATE INDEX calls_unfinished ON calls (created_at) WHERE json_extract(body, '$.status') NOT IN ('ended');
CREATE INDEX legs_unfinished ON legs (created_at)
    WHERE json_extract(body, '$.status') NOT IN ('busy', 'failed', 'hangup', 'no_answer');
