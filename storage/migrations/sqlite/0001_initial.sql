-- greenroom's first schema (SQLite). Timestamps are REAL Unix seconds (UTC);
-- JSON is TEXT. Status columns carry CHECKs mirroring the
-- Literals of the concern module that keeps each table (storage/_users.py,
-- _messages.py, _jobs.py, _approvals.py, _ledger.py; a table no module keeps
-- yet, its future one).

CREATE TABLE users (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    platform         TEXT NOT NULL,
    platform_user_id TEXT NOT NULL,
    display_name     TEXT NOT NULL DEFAULT '',
    tier             TEXT NOT NULL DEFAULT 'public' CHECK (tier IN ('public', 'admin')),
    created_at       REAL NOT NULL,
    last_seen_at     REAL NOT NULL,
    UNIQUE (platform, platform_user_id)
);

CREATE TABLE chat_threads (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    platform   TEXT NOT NULL,
    chat_id    TEXT NOT NULL,
    summary    TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (platform, chat_id)
);

CREATE TABLE chat_messages (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id           INTEGER NOT NULL REFERENCES chat_threads (id),
    user_id             INTEGER REFERENCES users (id),
    role                TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    author              TEXT NOT NULL DEFAULT '',
    text                TEXT NOT NULL,
    platform_message_id TEXT,
    idempotency_key     TEXT NOT NULL UNIQUE,
    reply_to            INTEGER REFERENCES chat_messages (id),
    raw                 TEXT NOT NULL DEFAULT '{}',
    created_at          REAL NOT NULL,
    sent_at             REAL
);
CREATE INDEX chat_messages_thread ON chat_messages (thread_id, id);
CREATE INDEX chat_messages_unsent ON chat_messages (id) WHERE role <> 'user' AND sent_at IS NULL;

CREATE TABLE message_artifacts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES chat_messages (id),
    kind       TEXT NOT NULL CHECK (kind IN ('voice_transcript', 'image_json', 'ocr_text', 'file_meta', 'tool_result')),
    content    TEXT NOT NULL,
    uri        TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX message_artifacts_message ON message_artifacts (message_id);

CREATE TABLE reactive_jobs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id  INTEGER NOT NULL REFERENCES chat_threads (id),
    message_id INTEGER NOT NULL UNIQUE REFERENCES chat_messages (id),
    status     TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'canceled')),
    mode       TEXT NOT NULL DEFAULT 'chat',
    payload    TEXT NOT NULL DEFAULT '{}',
    attempts   INTEGER NOT NULL DEFAULT 0,
    error      TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX reactive_jobs_queued ON reactive_jobs (id) WHERE status = 'queued';
CREATE INDEX reactive_jobs_running ON reactive_jobs (id) WHERE status = 'running';

CREATE TABLE approvals (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id  INTEGER NOT NULL REFERENCES chat_threads (id),
    message_id INTEGER REFERENCES chat_messages (id),
    summary    TEXT NOT NULL,
    plan       TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'superseded')),
    created_at REAL NOT NULL,
    decided_at REAL
);
-- At most one pending plan per thread: a new one supersedes the old.
CREATE UNIQUE INDEX approvals_one_pending ON approvals (thread_id) WHERE status = 'pending';

CREATE TABLE token_ledger (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    scope        TEXT NOT NULL CHECK (scope IN ('proactive', 'reactive')),
    provider     TEXT NOT NULL,
    model        TEXT NOT NULL,
    tokens_in    INTEGER NOT NULL CHECK (tokens_in >= 0),
    tokens_out   INTEGER NOT NULL CHECK (tokens_out >= 0),
    tokens_total INTEGER NOT NULL,
    cost         REAL NOT NULL,
    meta         TEXT NOT NULL DEFAULT '{}',
    created_at   REAL NOT NULL
);
CREATE INDEX token_ledger_scope_time ON token_ledger (scope, created_at);

CREATE TABLE memories (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    user_key          TEXT NOT NULL,
    fact              TEXT NOT NULL,
    source_message_id INTEGER REFERENCES chat_messages (id),
    created_at        REAL NOT NULL
);
CREATE INDEX memories_user ON memories (user_key, id);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);

-- Tables whose methods arrive with their issues (deploy, payments, reminders,
-- garden); the schema is here so every backend starts complete.
CREATE TABLE deployments (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_sha       TEXT NOT NULL,
    branch           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'building', 'testing', 'switching', 'checking', 'live', 'rolled_back', 'failed')),
    previous_release TEXT,
    log              TEXT NOT NULL DEFAULT '',
    started_at       REAL NOT NULL,
    finished_at      REAL
);

CREATE TABLE invoices (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_hash TEXT NOT NULL UNIQUE,
    bolt11       TEXT NOT NULL,
    amount_sat   INTEGER NOT NULL CHECK (amount_sat > 0),
    memo         TEXT NOT NULL DEFAULT '',
    purpose      TEXT NOT NULL,
    user_key     TEXT,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'refunded', 'canceled')),
    preimage     TEXT,
    created_at   REAL NOT NULL,
    paid_at      REAL
);

CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_key    TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    balance_sat INTEGER NOT NULL DEFAULT 0 CHECK (balance_sat >= 0),
    created_at  REAL NOT NULL,
    expires_at  REAL
);

CREATE TABLE reminders (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_key   TEXT NOT NULL,
    thread_id  INTEGER REFERENCES chat_threads (id),
    text       TEXT NOT NULL,
    due_at     REAL NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'canceled')),
    created_at REAL NOT NULL
);
CREATE INDEX reminders_due ON reminders (due_at) WHERE status = 'pending';

CREATE TABLE ideas (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_key   TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL DEFAULT '',
    stage      TEXT NOT NULL CHECK (stage IN ('seed', 'growing', 'harvested', 'composted')),
    watered_at REAL,
    created_at REAL NOT NULL
);
