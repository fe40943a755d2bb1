-- A queue the worker found drained goes idle (next_attempt_at = dip.queue.IDLE) instead of
-- staying due, so the claim reads the queues table alone and never probes deliveries for work.
-- Every enqueue (and every make_due) counts an arrival; a release that finds the count moved
-- since its claim keeps the queue due, so nothing enqueued during a call is left waiting.
ALTER TABLE queues ADD COLUMN arrivals BIGINT NOT NULL DEFAULT 0;
