-- A call answered 201 no longer writes each of its delivery rows. A queue is served strictly in
-- id order, so a successful call delivers a contiguous run of the queue's pending rows, and the
-- queue's watermark moves over the run: a delivery whose row still says 'pending' and whose id is
-- at or below its queue's delivered_through was delivered. Rejected, failed, dead and retried
-- rows are still written one by one. The delivery_status view gives every delivery's state.
ALTER TABLE queues ADD COLUMN delivered_through BIGINT NOT NULL DEFAULT 0;

-- One row per successful call: the run of the queue it delivered, the HTTP status, when.
CREATE TABLE delivery_calls (
    queue TEXT NOT NULL,
    last_id BIGINT NOT NULL,
    first_id BIGINT NOT NULL,
    messages INTEGER NOT NULL,
    status INTEGER,
    note TEXT,
    done_at BIGINT NOT NULL,
    PRIMARY KEY (queue, last_id)
);

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
       d.body
FROM deliveries d JOIN queues q ON q.queue = d.queue;
