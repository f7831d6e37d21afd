-- What each key may do (KeyScope as JSON); NULL for the keys made before scopes, which keep
-- working as they did (with a warning) until the installer splits them.
ALTER TABLE access_keys ADD COLUMN scope TEXT;
