-- The archive (docs/archive.md): replay, requeue and redrive read it.
-- The channel's retentionDays when the message was accepted: the message is kept that long.
ALTER TABLE messages ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 730;

-- A delivery row is an original (the routing at acceptance: all three NULL) or a copy on the
-- queue: a requeued replay (replay_id, the new transaction ID its element carries, and the
-- requeue it belongs to) or a redriven delivery (redrive_of, the row it stands in for, which is
-- marked 'redriven'). A copy's accepted_at is when it was queued: its dead-letter clock.
ALTER TABLE deliveries ADD COLUMN replay_id TEXT;
ALTER TABLE deliveries ADD COLUMN requeue_id TEXT;
ALTER TABLE deliveries ADD COLUMN redrive_of BIGINT;
-- replay selects a recipient's originals on one channel by time, oldest first
CREATE INDEX deliveries_archive ON deliveries (queue, accepted_at, id) WHERE replay_id IS NULL AND redrive_of IS NULL;
CREATE INDEX deliveries_requeue ON deliveries (requeue_id) WHERE requeue_id IS NOT NULL;
-- replay and search by MPAN read its messages in time order
DROP INDEX messages_mpan;
CREATE INDEX messages_mpan ON messages (mpan, received_at) WHERE mpan IS NOT NULL;

-- delivery_status as before, with the copy columns: what became of each delivery
DROP VIEW delivery_status;
CREATE VIEW delivery_status AS
SELECT d.id, d.queue, d.transaction_id, d.recipient_id, d.role, d.kind,
       CASE WHEN d.state = 'pending' AND d.id <= q.delivered_through THEN 'delivered' ELSE d.state END AS state,
       CASE WHEN d.state = 'pending' AND d.id <= q.delivered_through THEN d.attempts + 1 ELSE d.attempts END
           AS attempts,
       d.accepted_at,
       CASE WHEN d.state = 'pending' AND d.id <= q.delivered_through
            THEN (SELECT c.done_at FROM delivery_calls c WHERE c.queue = d.queue AND c.last_id >= d.id
                  ORDER BY c.last_id LIMIT 1)
            ELSE d.done_at END AS done_at,
       CASE WHEN d.state = 'pending' AND d.id <= q.delivered_through
            THEN (SELECT c.status FROM delivery_calls c WHERE c.queue = d.queue AND c.last_id >= d.id
                  ORDER BY c.last_id LIMIT 1)
            ELSE d.last_status END AS last_status,
       CASE WHEN d.state = 'pending' AND d.id <= q.delivered_through
            THEN (SELECT c.note FROM delivery_calls c WHERE c.queue = d.queue AND c.last_id >= d.id
                  ORDER BY c.last_id LIMIT 1)
            ELSE d.last_error END AS last_error,
       d.body, d.replay_id, d.requeue_id, d.redrive_of
FROM deliveries d JOIN queues q ON q.queue = d.queue;

-- A requeue request: its selection (the MessageRequest, as JSON) is appended to the queue in
-- chunks by whichever node holds the lease; appended_through is how far the selection is done.
CREATE TABLE requeues (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    interface_id TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    selection TEXT NOT NULL,
    total INTEGER NOT NULL,
    appended INTEGER NOT NULL DEFAULT 0,
    after_at BIGINT NOT NULL DEFAULT -1,
    after_id BIGINT NOT NULL DEFAULT -1,
    done BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX requeues_open ON requeues (created_at) WHERE NOT done;

-- Where the next page of a large replay starts (X-Continuation-Token): one row per page handed
-- out, bound to the caller, the recipient, the channel and the exact request.
CREATE TABLE replay_pages (
    token TEXT PRIMARY KEY,
    caller_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    after_at BIGINT NOT NULL,
    after_id BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
