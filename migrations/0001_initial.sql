-- 0001_initial: the first schema of oO.
--
-- Applied by oo/migrate.py in one transaction (do not add BEGIN/COMMIT).
-- Never edit this file once applied anywhere: write 0002_... instead.
--
-- Deleting a person is total: DELETE FROM users removes every row about them
-- through ON DELETE CASCADE (sessions, consents, credentials, push
-- subscriptions, tips and their deliveries). No soft-delete flags.
-- gen_random_uuid() is built into PostgreSQL 13+ (no pgcrypto needed).

-- A person. Anonymous until they sign in with OIDC; the pair (issuer,
-- subject) identifies them at their identity provider.
CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    time_zone     text NOT NULL DEFAULT 'UTC',       -- IANA name, e.g. Europe/Paris
    preferences   jsonb NOT NULL DEFAULT '{}'::jsonb, -- quiet hours, daily budget, kinds...
    oidc_issuer   text,
    oidc_subject  text,
    display_name  text,
    CONSTRAINT users_preferences_object CHECK (jsonb_typeof(preferences) = 'object'),
    CONSTRAINT users_oidc_both_or_neither CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL)),
    CONSTRAINT users_oidc_unique UNIQUE (oidc_issuer, oidc_subject)
);

-- A signed-in browser. The id is a hash of the session token (the token
-- itself is only in the cookie), so a leaked table cannot be replayed.
CREATE TABLE sessions (
    id               text PRIMARY KEY,               -- hash of the session token
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    csrf_token_hash  text NOT NULL,                  -- hash of the CSRF token bound to it
    user_agent       text,
    CONSTRAINT sessions_expiry_after_creation CHECK (expires_at > created_at)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);  -- purge of expired sessions

-- Which version of which document (terms, privacy notice, a connector's data
-- use) a person accepted, and when. version_hash identifies the exact text.
CREATE TABLE consents (
    id            bigserial PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    document      text NOT NULL,
    version_hash  text NOT NULL,
    accepted_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT consents_once_per_version UNIQUE (user_id, document, version_hash)
);
CREATE INDEX consents_latest_idx ON consents (user_id, document, accepted_at DESC);

-- A connector's access to a person's data elsewhere (tasks, calendar...).
-- The tokens are sealed with a pynacl SecretBox: ciphertext is its whole
-- output (24-byte nonce followed by the encrypted tokens and MAC); key_id names
-- the key that sealed it, so keys can be rotated row by row.
CREATE TABLE credentials (
    id          bigserial PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connector   text NOT NULL,
    key_id      text NOT NULL,
    ciphertext  bytea NOT NULL,
    scopes      text[] NOT NULL DEFAULT '{}',
    cursor      text,                                -- sync position at the source, if any
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credentials_one_per_connector UNIQUE (user_id, connector),
    -- SecretBox output is at least nonce (24) + MAC (16) bytes.
    CONSTRAINT credentials_sealed CHECK (octet_length(ciphertext) >= 40)
);
CREATE INDEX credentials_key_idx ON credentials (key_id);  -- find rows to re-seal on rotation

-- A browser's Web Push subscription (one per device and browser).
CREATE TABLE push_subscriptions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint         text NOT NULL UNIQUE,
    p256dh           text NOT NULL,                  -- the browser's public key
    auth             text NOT NULL,                  -- the browser's auth secret
    user_agent       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_success_at  timestamptz,
    failure_count    integer NOT NULL DEFAULT 0 CHECK (failure_count >= 0)
);
CREATE INDEX push_subscriptions_user_idx ON push_subscriptions (user_id);

-- One decided tip for one person: what was shown, why, and what became of it.
-- decision_id is the idempotency key of the TipDecided event, so replaying
-- the event never makes a second row. context_snapshot and propensity are
-- kept for off-policy evaluation of the deciding policy.
CREATE TABLE tip_instances (
    decision_id       text PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tip_id            text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('todo', 'advice')),
    title             text NOT NULL,
    body              text NOT NULL DEFAULT '',
    source            text NOT NULL,
    deep_link         text,
    meta              jsonb NOT NULL DEFAULT '{}'::jsonb,
    moment            text NOT NULL,
    policy            text NOT NULL,
    propensity        double precision NOT NULL CHECK (propensity >= 0 AND propensity <= 1),
    reason            text,
    triggered_by      text,                          -- event_id that made the moment
    context_snapshot  jsonb NOT NULL,
    decided_at        timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN (
                          'pending', 'delivered', 'seen', 'done', 'ack', 'saved', 'snoozed',
                          'dismissed', 'ignored', 'expired', 'withdrawn')),
    expires_at        timestamptz,
    reacted_at        timestamptz,
    snooze_until      timestamptz
);
CREATE INDEX tip_instances_user_decided_idx ON tip_instances (user_id, decided_at DESC);
-- The sweeps that expire open tips and wake snoozed ones look only at these rows.
CREATE INDEX tip_instances_open_expiry_idx ON tip_instances (expires_at)
    WHERE status IN ('pending', 'delivered', 'seen');
CREATE INDEX tip_instances_snoozed_idx ON tip_instances (snooze_until)
    WHERE status = 'snoozed';

-- The delivery log of Web Push: one row per (tip, device). A push is sent
-- only after its row is claimed, so a retried or replayed decision reaches
-- each device at most once, and a failed one is retried from here.
CREATE TABLE push_deliveries (
    decision_id      text NOT NULL REFERENCES tip_instances (decision_id) ON DELETE CASCADE,
    subscription_id  uuid NOT NULL REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN (
                         'pending', 'sending', 'sent', 'failed', 'gone')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error       text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (decision_id, subscription_id)
);
CREATE INDEX push_deliveries_subscription_idx ON push_deliveries (subscription_id);
CREATE INDEX push_deliveries_retry_idx ON push_deliveries (updated_at)
    WHERE status IN ('pending', 'sending', 'failed');

-- Transactional outbox: events written in the same transaction as the state
-- change they describe, then published to Kafka by a relay in id order.
-- Published rows are pruned by the relay; key is usually the user id.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    topic         text NOT NULL,
    key           text,
    payload       jsonb NOT NULL,
    headers       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
