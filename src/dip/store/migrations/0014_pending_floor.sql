-- A queue remembers how far back its pending deliveries go: the oldest acceptance among the
-- deliveries its last read returned (delivered or not, every later delivery of the queue was
-- accepted after them, less the ingest skew dip.queue.ENQUEUE_SKEW). The next read looks back to
-- there, not to the dead-letter deadline: on PostgreSQL a read and its settlement plan over the
-- day partitions since, a day or two instead of sixteen (docs/architecture.md, "Delivery queues").
ALTER TABLE queues ADD COLUMN pending_floor BIGINT NOT NULL DEFAULT 0;
