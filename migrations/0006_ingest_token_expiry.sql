-- An ingest token may have an expiry: from expires_at on it is refused (401) like a
-- revoked one, so a token given to a tracker for a trial or a trip stops by itself.
-- NULL: the token lasts until it is revoked (every token made before this migration).
ALTER TABLE ingest_tokens ADD COLUMN expires_at timestamptz;
ALTER TABLE ingest_tokens ADD CONSTRAINT ingest_tokens_expires_after_creation
    CHECK (expires_at IS NULL OR expires_at > created_at);
