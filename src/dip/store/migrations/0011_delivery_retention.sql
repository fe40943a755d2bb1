-- Each delivery is kept for its message's retention, counted from its own time (accepted_at: when
-- it was queued), so the purge can tell what has expired without the message; on PostgreSQL the
-- class is also the first level of the partitions (0012).
ALTER TABLE deliveries ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 730;
UPDATE deliveries SET retention_days = (SELECT m.retention_days FROM messages m
                                        WHERE m.transaction_id = deliveries.transaction_id)
WHERE kind <> 'status' AND EXISTS (SELECT 1 FROM messages m WHERE m.transaction_id = deliveries.transaction_id
                                   AND m.retention_days <> 730);
-- the purge (SQLite) reads each retention class's oldest deliveries
CREATE INDEX deliveries_expiry ON deliveries (retention_days, accepted_at);
