-- PostgreSQL keeps the archive in partitions (docs/archive.md, "Retention"; docs/scale.md):
-- messages and deliveries are each partitioned by retention class (LIST on retention_days), and
-- each class by day (RANGE on received_at, accepted_at: microseconds). A purge drops a class's
-- expired days; it deletes no rows. The store makes the partitions (dip.store.partitions): each
-- class and its days ahead of time, and moves any row that reached a default partition (a class
-- or a day it had not made yet) into its own partition.
--
-- Partitioned tables cannot hold a unique index that leaves out the partition key: the
-- transaction ID (made unique by the DIP) and the delivery ID (a sequence) get plain indexes, and
-- sender references already have a table of their own (0010). The indexes SQLite's purge reads
-- (messages_expiry, deliveries_expiry) are not made again: here a purge drops partitions.
-- Rows already stored go to the
-- default partitions here and into their days when the store first opens.
DROP VIEW delivery_status;

CREATE TABLE messages_partitioned (LIKE messages INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMPRESSION)
    PARTITION BY LIST (retention_days);
CREATE TABLE messages_default PARTITION OF messages_partitioned DEFAULT;
INSERT INTO messages_partitioned SELECT * FROM messages;
DROP TABLE messages;
ALTER TABLE messages_partitioned RENAME TO messages;
CREATE INDEX messages_transaction ON messages (transaction_id);
CREATE INDEX messages_interface_received ON messages (interface_id, received_at);
CREATE INDEX messages_correlation ON messages (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX messages_mpan ON messages (mpan, received_at) WHERE mpan IS NOT NULL;

ALTER SEQUENCE deliveries_id_seq OWNED BY NONE;
CREATE TABLE deliveries_partitioned (LIKE deliveries INCLUDING DEFAULTS INCLUDING STORAGE)
    PARTITION BY LIST (retention_days);
CREATE TABLE deliveries_default PARTITION OF deliveries_partitioned DEFAULT;
INSERT INTO deliveries_partitioned SELECT * FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_partitioned RENAME TO deliveries;
ALTER SEQUENCE deliveries_id_seq OWNED BY deliveries.id;
CREATE INDEX deliveries_id ON deliveries (id);
CREATE INDEX deliveries_pending ON deliveries (queue, id) WHERE state = 'pending';
CREATE INDEX deliveries_transaction ON deliveries (transaction_id);
CREATE INDEX deliveries_undelivered ON deliveries (state, id) WHERE state IN ('dead', 'failed', 'rejected');
CREATE INDEX deliveries_archive ON deliveries (queue, accepted_at, id) WHERE replay_id IS NULL AND redrive_of IS NULL;
CREATE INDEX deliveries_requeue ON deliveries (requeue_id) WHERE requeue_id IS NOT NULL;

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
