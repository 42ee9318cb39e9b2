-- The ticket stream on SQLite. Times are ISO-8601 UTC strings with microseconds, so they sort as text.
CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    name TEXT,
    merged_into TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE identities (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts(id),
    display_name TEXT,
    handle TEXT,
    PRIMARY KEY (kind, value)
);
CREATE INDEX identities_contact ON identities(contact_id);

CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);

CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    status TEXT NOT NULL,
    channel TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    subject TEXT,
    tags TEXT NOT NULL DEFAULT '{}',
    tramite TEXT,
    agency TEXT,
    assignee TEXT,
    queue TEXT,
    priority TEXT NOT NULL DEFAULT 'normal',
    created_at TEXT NOT NULL,
    first_response_at TEXT,
    resolved_at TEXT,
    last_activity_at TEXT NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX tickets_activity ON tickets(last_activity_at DESC, number DESC);
CREATE INDEX tickets_status ON tickets(status, last_activity_at DESC, number DESC);
CREATE INDEX tickets_assignee ON tickets(assignee, last_activity_at DESC, number DESC);
CREATE INDEX tickets_queue ON tickets(queue, last_activity_at DESC, number DESC);
CREATE INDEX tickets_channel ON tickets(channel, last_activity_at DESC, number DESC);
CREATE INDEX tickets_tramite ON tickets(tramite, last_activity_at DESC, number DESC);
CREATE INDEX tickets_agency ON tickets(agency, last_activity_at DESC, number DESC);
CREATE INDEX tickets_contact ON tickets(contact_id);

CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ticket_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    channel TEXT NOT NULL,
    account TEXT NOT NULL,
    external_id TEXT,
    conversation_id TEXT,
    author_kind TEXT,
    author_value TEXT,
    author_name TEXT,
    author_user TEXT,
    subject TEXT,
    text TEXT NOT NULL,
    html TEXT,
    attachments TEXT NOT NULL DEFAULT '[]',
    raw_ref TEXT,
    sent_at TEXT,
    received_at TEXT NOT NULL,
    delivery_status TEXT,
    delivery_error TEXT,
    flags TEXT NOT NULL DEFAULT '[]',
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX messages_external ON messages(channel, account, external_id);
CREATE INDEX messages_external_any ON messages(channel, external_id);
CREATE INDEX messages_conversation ON messages(channel, account, conversation_id);
CREATE INDEX messages_ticket ON messages(ticket_id, seq);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    ticket_id TEXT,
    actor TEXT NOT NULL,
    at TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_ticket ON events(ticket_id, seq);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    not_before TEXT NOT NULL,
    lease_until TEXT,
    worker TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX jobs_ready ON jobs(status, not_before);
CREATE INDEX jobs_lease ON jobs(status, lease_until);

CREATE TABLE docs (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (collection, key)
);

-- Full-text search, case and accent insensitive. Tickets (subject + contact) and messages (text) are indexed apart.
CREATE VIRTUAL TABLE ticket_fts USING fts5(subject, contact, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE message_fts USING fts5(text, ticket_number UNINDEXED, tokenize = 'unicode61 remove_diacritics 2');
