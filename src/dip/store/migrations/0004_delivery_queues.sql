-- Delivery: one row per message and recipient (participant, role), served in id order per queue.
-- A queue is one recipient webhook: (recipient, channel) for publications, (recipient, status)
-- for status messages, whose body is kept on the row.
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    queue TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    role TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    accepted_at BIGINT NOT NULL,
    done_at BIGINT,
    last_status INTEGER,
    last_error TEXT,
    body BYTEA
);
CREATE INDEX deliveries_pending ON deliveries (queue, id) WHERE state = 'pending';
CREATE INDEX deliveries_transaction ON deliveries (transaction_id);

-- When each queue may next be tried, how many times its head has failed, and who holds it.
CREATE TABLE queues (
    queue TEXT PRIMARY KEY,
    recipient_id TEXT NOT NULL,
    interface_id TEXT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    retries INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX queues_due ON queues (next_attempt_at);
