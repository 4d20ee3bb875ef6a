-- Whether a person came back on day 1 and on day 7 after signing up (days counted
-- in 24 h from users.created_at), for D1/D7 retention on the web's /metrics. A row
-- is written the first time a session of theirs is used on that day; no other day
-- is kept (least data), and the rows go with the person.
CREATE TABLE active_days (
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day      smallint NOT NULL CHECK (day IN (1, 7)),
    PRIMARY KEY (user_id, day)
);
