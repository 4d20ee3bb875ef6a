-- Sign-in with OpenID Connect and connector OAuth: the short-lived, one-use
-- attempts between leaving for the provider and coming back.
--
-- Neither table holds a secret a copy of the database could use: a sign-in
-- attempt is found by the hash of a random token only the browser's cookie
-- holds (the nonce and PKCE verifier are derived from that token, never
-- stored), and both keep only the hash of the OAuth `state`. A row is deleted
-- when its callback arrives (whatever the outcome), so a callback replayed
-- finds nothing.

CREATE TABLE sign_in_attempts (
    id          text PRIMARY KEY,                  -- SHA-256 of the attempt token (cookie oo_signin)
    state_hash  text NOT NULL,                     -- SHA-256 of the state sent to the provider
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CONSTRAINT sign_in_attempts_expiry CHECK (expires_at > created_at)
);
CREATE INDEX sign_in_attempts_expires_idx ON sign_in_attempts (expires_at);

CREATE TABLE connector_attempts (
    id          text PRIMARY KEY,                  -- SHA-256 of the state sent to the connector
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connector   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CONSTRAINT connector_attempts_expiry CHECK (expires_at > created_at)
);
CREATE INDEX connector_attempts_user_idx ON connector_attempts (user_id);
CREATE INDEX connector_attempts_expires_idx ON connector_attempts (expires_at);
