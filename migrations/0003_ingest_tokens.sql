-- Per-person ingest tokens for trackers that can only send webhooks (POST /api/signals),
-- and the event ids they sent, so a replayed batch is accepted once.

CREATE TABLE ingest_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    token_hash    text NOT NULL UNIQUE,                -- SHA-256 of the token; the token is shown once
    domains       text[] NOT NULL CHECK (cardinality(domains) > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX ingest_tokens_user_idx ON ingest_tokens (user_id);

CREATE TABLE ingested_events (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_id     text NOT NULL,
    accepted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX ingested_events_age_idx ON ingested_events (accepted_at);  -- pruning
