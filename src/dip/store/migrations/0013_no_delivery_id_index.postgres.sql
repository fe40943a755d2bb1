-- The delivery ID's own index (0012's stand-in for the primary key) goes: every read by ID also
-- names the queue and the state, and so uses the queue's pending index or the undelivered one.
-- With it there, PostgreSQL would probe it for a queue's next delivery in a partition whose
-- statistics predate its rows, and filter every other queue's deliveries above the watermark
-- (measured: 90 ms a claim, 200,000 rows filtered, on the 9.7-million archive).
DROP INDEX deliveries_id;
