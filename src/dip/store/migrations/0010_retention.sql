-- Retention (docs/archive.md, "Retention"). Sender unique references get a table of their own:
-- they must stay unique for at least the longest retention, longer than a short-lived channel's
-- messages are kept, and the messages table will not be able to hold a unique index of its own
-- once it is partitioned. The reference names its message (search by reference reads it).
CREATE TABLE sender_references (
    sender_id TEXT NOT NULL,
    sur TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (sender_id, sur)
);
INSERT INTO sender_references (sender_id, sur, transaction_id, received_at)
SELECT sender_id, sur, transaction_id, received_at FROM messages;
DROP INDEX messages_sender_sur;
CREATE INDEX sender_references_received ON sender_references (received_at);

-- the purge reads each retention class's oldest messages
CREATE INDEX messages_expiry ON messages (retention_days, received_at);
-- every retention a message was ever accepted with (the purge looks at each)
CREATE TABLE retention_classes (days INTEGER PRIMARY KEY);
INSERT INTO retention_classes (days) VALUES (730);
INSERT INTO retention_classes (days) SELECT DISTINCT retention_days FROM messages WHERE retention_days <> 730;

-- Jobs every node runs on a schedule, done once at a time by whichever node holds the lease.
CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    next_run_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_run_at BIGINT,
    last_result TEXT
);
