-- Withdrawals are delivered like tips: one row per withdrawn tip and device, so a
-- worker that crashes after replacing a tip still closes its notification on every
-- device, once, when the replacing decision is redelivered.

ALTER TABLE tip_instances ADD COLUMN withdrawn_by text;  -- the decision that replaced it

CREATE TABLE push_withdrawals (
    decision_id      text NOT NULL REFERENCES tip_instances (decision_id) ON DELETE CASCADE,
    subscription_id  uuid NOT NULL REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    withdrawn_by     text NOT NULL,                  -- decision id that made it stale
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN (
                         'pending', 'sent', 'failed', 'gone')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error       text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (decision_id, subscription_id)
);
CREATE INDEX push_withdrawals_by_idx ON push_withdrawals (withdrawn_by);
CREATE INDEX push_withdrawals_subscription_idx ON push_withdrawals (subscription_id);
