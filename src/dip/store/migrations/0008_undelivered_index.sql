-- The operator's list of what was not delivered (GET /admin/undelivered): dead-lettered,
-- failed and rejected deliveries, by state, in id order. Partial: these rows are few, and a
-- delivery is inserted 'pending', so ingest never writes to this index.
CREATE INDEX deliveries_undelivered ON deliveries (state, id) WHERE state IN ('dead', 'failed', 'rejected');
