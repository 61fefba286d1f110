-- Small durable state a connector resumes from: Telegram's getUpdates offset,
-- a Nostr relay's "since". One row per (connector, key).
CREATE TABLE connector_state (
    connector  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (connector, key)
);
