-- Every statement the store runs, written once in PostgreSQL's SQL and named. The SQLite
-- dialect translates them mechanically when it loads them (dip.store.sqlite.translate):
-- $n placeholders, "unnest($n::type[]) AS b(col)" and "= ANY($n::type[])" list parameters and
-- "FOR UPDATE [SKIP LOCKED]". Nothing here may need more than that: a statement one dialect
-- cannot run goes behind a dialect primitive (COPY, bulk upsert, statistics), never into a
-- second copy of this file.
--
-- A list parameter is joined as a table (unnest), not tested with "= ANY($n)" (one exception,
-- planned at every run: stored_messages): a plan that PostgreSQL caches for a prepared
-- statement while a table is still small may scan the table and test every row against the
-- whole list, and keeps doing so as the table grows
-- (measured: 15 s instead of 30 ms for 10,000 references on 100,000 rows). A join stays an
-- index probe per list element in any plan. The join is written "CROSS JOIN ... WHERE": SQLite
-- then keeps the list as the outer loop (left to itself it may scan all of one sender's messages
-- and the list for each), and PostgreSQL plans it as any other join.

-- ---------------------------------------------------------------------------------------
-- State shared by the nodes: participants, credentials, channels, webhooks

-- name: state_version
SELECT value FROM meta WHERE key = 'state_version';

-- name: bump_state_version
UPDATE meta SET value = value + 1 WHERE key = 'state_version';

-- name: participants
SELECT id, name, roles, active FROM participants;

-- name: api_keys
SELECT key_hash, participant_id FROM api_keys WHERE revoked_at IS NULL;

-- name: certificates
SELECT fingerprint, participant_id FROM certificates WHERE revoked_at IS NULL;

-- name: retiring_certificates
SELECT fingerprint, retires_at FROM certificates WHERE revoked_at IS NULL AND retires_at IS NOT NULL;

-- name: certificates_of
SELECT fingerprint, pem, not_after, created_at, revoked_at, retires_at, issued_by_dip FROM certificates
WHERE participant_id = $1 ORDER BY created_at, fingerprint;

-- name: retire_certificate
UPDATE certificates SET retires_at = $1
WHERE participant_id = $2 AND fingerprint = $3 AND revoked_at IS NULL AND (retires_at IS NULL OR retires_at > $1);

-- name: mark_issued_by_dip
UPDATE certificates SET issued_by_dip = TRUE WHERE fingerprint = $1;

-- name: connection_providers
SELECT participant_id, dcp_id, roles FROM connection_providers;

-- name: admin_keys
SELECT key_hash FROM admin_keys;

-- name: operator_keys
SELECT key_hash, id, name, role FROM operators WHERE revoked_at IS NULL;

-- name: insert_operator
INSERT INTO operators (id, name, role, key_hash, created_at) VALUES ($1, $2, $3, $4, $5);

-- name: revoke_operator
UPDATE operators SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL;

-- name: operators
SELECT id, name, role, created_at, revoked_at FROM operators ORDER BY created_at;

-- name: webhooks
SELECT participant_id, kind, interface_id, url, max_message_count, max_payload_kb, registered_by FROM webhooks;

-- name: channels
SELECT interface_id, definition FROM channels;

-- name: insert_participant
INSERT INTO participants (id, name, roles, active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
ON CONFLICT (id) DO NOTHING;

-- name: update_participant
UPDATE participants SET name = $2, roles = $3, active = $4, updated_at = $5 WHERE id = $1;

-- name: deactivate_participant
UPDATE participants SET active = FALSE, updated_at = $1 WHERE id = $2 AND active;

-- name: revoke_api_keys_of
UPDATE api_keys SET revoked_at = $1 WHERE participant_id = $2 AND revoked_at IS NULL;

-- name: revoke_certificates_of
UPDATE certificates SET revoked_at = $1 WHERE participant_id = $2 AND revoked_at IS NULL;

-- name: revoke_api_key
-- a key is named by the first 16 hex digits of its hash (dip.directory.key_id)
UPDATE api_keys SET revoked_at = $1 WHERE participant_id = $2 AND substr(key_hash, 1, 16) = $3 AND revoked_at IS NULL;

-- name: revoke_certificate
UPDATE certificates SET revoked_at = $1 WHERE participant_id = $2 AND fingerprint = $3 AND revoked_at IS NULL;

-- name: api_keys_of
SELECT substr(key_hash, 1, 16), created_at, revoked_at FROM api_keys WHERE participant_id = $1 ORDER BY created_at;

-- name: certificate_revoked
SELECT revoked_at IS NOT NULL FROM certificates WHERE fingerprint = $1;

-- name: drop_connection_providers_of
DELETE FROM connection_providers WHERE participant_id = $1 OR dcp_id = $1;

-- name: drop_webhooks_of
DELETE FROM webhooks WHERE participant_id = $1;

-- name: insert_api_key
INSERT INTO api_keys (key_hash, participant_id, created_at) VALUES ($1, $2, $3);

-- name: insert_certificate
INSERT INTO certificates (fingerprint, participant_id, pem, not_after, created_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (fingerprint) DO NOTHING;

-- name: certificate_holder
SELECT participant_id FROM certificates WHERE fingerprint = $1;

-- name: put_connection_provider
INSERT INTO connection_providers (participant_id, dcp_id, roles, updated_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (participant_id, dcp_id) DO UPDATE SET roles = excluded.roles, updated_at = excluded.updated_at;

-- name: delete_connection_provider
DELETE FROM connection_providers WHERE participant_id = $1 AND dcp_id = $2;

-- name: insert_admin_key
INSERT INTO admin_keys (key_hash, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- name: insert_channel
INSERT INTO channels (interface_id, definition, updated_at) VALUES ($1, $2, $3) ON CONFLICT (interface_id) DO NOTHING;

-- name: update_channel
UPDATE channels SET definition = $2, updated_at = $3 WHERE interface_id = $1;

-- name: delete_channel
DELETE FROM channels WHERE interface_id = $1;

-- name: insert_webhook
INSERT INTO webhooks (participant_id, kind, interface_id, url, max_message_count, max_payload_kb, registered_by,
                      updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (participant_id, kind, interface_id) DO NOTHING;

-- name: update_webhook
UPDATE webhooks SET url = $4, max_message_count = $5, max_payload_kb = $6, registered_by = $7, updated_at = $8
WHERE participant_id = $1 AND kind = $2 AND interface_id = $3;

-- name: delete_webhook
DELETE FROM webhooks WHERE participant_id = $1 AND kind = $2 AND interface_id = $3;

-- name: insert_identity
INSERT INTO dip_identity (id, key_pem, cert_pem, created_at) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING;

-- name: identity
SELECT key_pem, cert_pem FROM dip_identity WHERE id = 1;

-- ---------------------------------------------------------------------------------------
-- Messages

-- name: existing_references
-- which of one sender's references are taken (sender_references' key decides: a reference stays
-- taken for the longest retention, after a short-lived channel's message has gone)
SELECT r.sur FROM unnest($2::text[]) AS b(sur) CROSS JOIN sender_references r WHERE r.sender_id = $1 AND r.sur = b.sur;

-- name: message
SELECT transaction_id, interface_id, event_code, schema_version, sender_id, sender_role, dcp_id, sur,
       correlation_id, mpan, received_at, payload, a0_secondary, a0_always, common_start, common_end, retention_days
FROM messages WHERE transaction_id = $1 AND received_at >= $2 AND received_at < $3;

-- name: count_messages
SELECT count(*) FROM messages;

-- name: senders
-- $1 holds no transaction ID twice (as every list parameter here); received from $2 to $3
SELECT m.transaction_id, m.sender_id, m.correlation_id
FROM unnest($1::text[]) AS b(id) CROSS JOIN messages m
WHERE m.transaction_id = b.id AND m.received_at >= $2 AND m.received_at < $3;

-- name: stored_messages
-- what delivery needs of the stored messages a queue's next call carries (message_cache.StoredMessage),
-- received from $2 to $3 (the span of the deliveries' own times, else the days their IDs name,
-- else all time: SqlStore._hinted). The one exception to the rule above: the span is often one
-- microsecond (a batch's messages share their received_at), which PostgreSQL, with statistics,
-- estimates at one row; joined, it then scanned the day's partition once into memory and
-- compared every one of its rows with every ID (7.2 s for 1,000 IDs of a 20,000-message batch).
-- Tested with "= ANY" there is no join to plan: an index probe per ID. The plan is made for each
-- run (Database.dated), never kept for a table that grows.
SELECT m.transaction_id, m.payload, m.correlation_id, m.received_at, m.a0_secondary, m.a0_always, m.common_start,
       m.common_end
FROM messages m
WHERE m.transaction_id = ANY($1::text[]) AND m.received_at >= $2 AND m.received_at < $3;

-- ---------------------------------------------------------------------------------------
-- The MPAN registry

-- name: registry_version
SELECT value FROM meta WHERE key = 'registry_seq';

-- name: next_registry_version
UPDATE meta SET value = value + 1 WHERE key = 'registry_seq' RETURNING value;

-- name: appointments
SELECT a.mpan, a.role, a.effective_from, a.participant_id, a.effective_to
FROM unnest($1::text[]) AS b(mpan) CROSS JOIN mpan_appointments a WHERE a.mpan = b.mpan;

-- name: registry_changes
-- ORDER BY seq walks the seq index in any plan (a DISTINCT would scan the table)
SELECT mpan FROM mpan_appointments WHERE seq > $1 ORDER BY seq LIMIT $2;

-- name: appointment_conflict
-- how a bulk upsert of appointments treats a key already there: the new row replaces it
ON CONFLICT (mpan, role, effective_from) DO UPDATE SET participant_id = excluded.participant_id,
    effective_to = excluded.effective_to, seq = excluded.seq;

-- ---------------------------------------------------------------------------------------
-- Delivery queues

-- name: upsert_queue
-- a queue's next attempt moves to now unless its head is backing off (retries > 0); an idle
-- queue's is far ahead, so it wakes. The arrival is counted for release_queue.
INSERT INTO queues (queue, recipient_id, interface_id, next_attempt_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (queue) DO UPDATE SET arrivals = queues.arrivals + 1, next_attempt_at = CASE
    WHEN queues.retries = 0 AND excluded.next_attempt_at < queues.next_attempt_at THEN excluded.next_attempt_at
    ELSE queues.next_attempt_at END;

-- name: make_due
UPDATE queues SET next_attempt_at = $1, arrivals = arrivals + 1
WHERE recipient_id = $2 AND retries = 0 AND next_attempt_at > $1;

-- name: claim
-- due queues only: a queue that was found drained is idle (dip.queue.IDLE) until an enqueue wakes
-- it, so the claim never reads deliveries (on PostgreSQL a probe for pending work planned over
-- every day's partition, and in a partition with stale statistics walked the ID index: 90 ms)
UPDATE queues SET lease_owner = $1, lease_until = $2 WHERE queue IN (
    SELECT queue FROM queues WHERE next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until < $3)
    ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)
RETURNING queue, recipient_id, interface_id, retries, arrivals, pending_floor;

-- name: pending
-- a queue's next deliveries, above its watermark, queued since $3 (RetryPolicy.oldest_pending:
-- on PostgreSQL that keeps the read to the days since; the stored messages are read apart:
-- stored_messages)
SELECT d.id, d.transaction_id, d.recipient_id, d.role, d.kind, d.accepted_at, d.attempts, d.body, d.replay_id
FROM deliveries d
WHERE d.queue = $1 AND d.state = 'pending' AND d.accepted_at >= $3
  AND d.id > (SELECT delivered_through FROM queues WHERE queue = $1)
ORDER BY d.id LIMIT $2;

-- name: lease_holder
SELECT lease_owner FROM queues WHERE queue = $1 FOR UPDATE;

-- name: settle_deliveries
-- deliveries a queue's pending read returned: queued since $6, as there
UPDATE deliveries SET state = $1, attempts = attempts + 1, last_status = $2, last_error = $3, done_at = $4
FROM unnest($5::bigint[]) AS b(id) WHERE deliveries.id = b.id AND deliveries.accepted_at >= $6;

-- name: record_call
INSERT INTO delivery_calls (queue, last_id, first_id, messages, status, note, done_at)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING;

-- name: release_queue
-- next attempt $1; a caller that took everything pending passes the arrivals it claimed at ($5):
-- the queue goes idle ($6) unless something was enqueued since (read committed: an enqueue that
-- committed before the claim was visible to the pending read, one after it moved the count).
-- $7: the oldest acceptance among the deliveries the call read (0 when it read none), the floor
-- of the queue's next read (migration 0014)
UPDATE queues SET next_attempt_at = CASE WHEN arrivals = $5 THEN CAST($6 AS BIGINT) ELSE CAST($1 AS BIGINT) END,
    retries = $2,
    lease_owner = NULL, lease_until = NULL,
    delivered_through = CASE WHEN delivered_through > $3 THEN delivered_through ELSE $3 END,
    pending_floor = CASE WHEN pending_floor > $7 THEN pending_floor ELSE CAST($7 AS BIGINT) END
WHERE queue = $4;

-- ---------------------------------------------------------------------------------------
-- What became of messages (the delivery_status view: a delivered row still says 'pending' in
-- deliveries; its queue's watermark says it was delivered)

-- name: delivery_states
-- (the store leaves out requeued replays, extra copies a recipient asked for: "replay_id IS NULL"
-- here would let PostgreSQL's generic plan, on a column it has no statistics for yet, scan every
-- delivery instead of probing the transaction index: 4.7 s on 22 million rows). A message's
-- deliveries are queued when it is received or later: since $2.
SELECT s.transaction_id, s.recipient_id, s.role, s.kind, s.state, s.replay_id
FROM unnest($1::text[]) AS b(id) CROSS JOIN delivery_status s WHERE s.transaction_id = b.id AND s.accepted_at >= $2
ORDER BY s.id;

-- name: delivery_history
SELECT recipient_id, role, kind, state, attempts, accepted_at, done_at, last_status, last_error
FROM delivery_status WHERE transaction_id = $1 AND accepted_at >= $2 ORDER BY id;

-- name: queue_overview
-- every queue (or one recipient's: $1) with its backlog, counted on the pending index, and its head
SELECT o.queue, o.recipient_id, o.interface_id, o.pending, o.retries, o.next_attempt_at, o.lease_owner,
       o.lease_until, h.accepted_at, h.attempts, h.last_status, h.last_error
FROM (SELECT q.queue, q.recipient_id, q.interface_id, q.retries, q.next_attempt_at, q.lease_owner, q.lease_until,
             (SELECT count(*) FROM deliveries d
              WHERE d.queue = q.queue AND d.state = 'pending' AND d.id > q.delivered_through) AS pending,
             (SELECT d.id FROM deliveries d
              WHERE d.queue = q.queue AND d.state = 'pending' AND d.id > q.delivered_through
              ORDER BY d.id LIMIT 1) AS head
      FROM queues q WHERE CAST($1 AS TEXT) IS NULL OR q.recipient_id = $1) o
LEFT JOIN deliveries h ON h.id = o.head ORDER BY o.queue;

-- name: undelivered
-- one state's undelivered deliveries above a cursor ($2), oldest first, optionally one recipient's
-- ($3) or one channel's ($4). The IN list repeats the partial index's predicate word for word, so
-- that both planners may use the index whatever state is asked for.
SELECT d.id, d.transaction_id, m.interface_id, m.sender_id, d.recipient_id, d.role, d.kind, d.state,
       d.attempts, d.accepted_at, d.done_at, d.last_status, d.last_error
FROM deliveries d LEFT JOIN messages m ON m.transaction_id = d.transaction_id
WHERE d.state = $1 AND d.state IN ('dead', 'failed', 'rejected') AND d.id > $2
  AND (CAST($3 AS TEXT) IS NULL OR d.recipient_id = $3) AND (CAST($4 AS TEXT) IS NULL OR m.interface_id = $4)
ORDER BY d.id LIMIT $5;

-- ---------------------------------------------------------------------------------------
-- The archive: replay, requeue, redrive (docs/archive.md)
--
-- A selection is a recipient's original deliveries on one channel (its queue, $1), in
-- acceptance order (accepted_at, id) after a cursor ($2, $3), accepted from $4 to $5 inclusive,
-- narrowed by event code ($6), MPAN ($7) and schema version ($8), at most $9 of them. An
-- original's accepted_at is its message's received_at. What drives a selection: the queue's
-- archive index (by time: queue_originals, then selection_matching), the MPAN's index (in two
-- steps too: mpan_messages, then queue_originals_of a day at a time), or a list of transaction
-- IDs (one statement); where another drives, "d.queue || ''" keeps SQLite from reading the
-- queue's whole range (with no statistics it rates (queue, accepted_at) above the transaction
-- ID's index). Each statement bounds its tables' times: PostgreSQL then reads only the days in
-- range.

-- name: _selected
SELECT d.id, d.accepted_at, d.transaction_id, d.role, d.kind, d.retention_days

-- name: _selection_by_time
{_selected}
FROM deliveries d JOIN messages m ON m.transaction_id = d.transaction_id
WHERE d.queue = $1 AND d.replay_id IS NULL AND d.redrive_of IS NULL
  AND d.accepted_at >= $4 AND d.accepted_at <= $5 AND (d.accepted_at, d.id) > ($2, $3)
  AND m.received_at >= $4 AND m.received_at <= $5
  AND (CAST($6 AS TEXT) IS NULL OR m.event_code = $6) AND (CAST($7 AS TEXT) IS NULL OR m.mpan = $7)
  AND (CAST($8 AS TEXT) IS NULL OR m.schema_version = $8)
ORDER BY d.accepted_at, d.id LIMIT $9;

-- name: _selection_by_ids
{_selected}
FROM unnest($10::text[]) AS b(id) CROSS JOIN deliveries d CROSS JOIN messages m
WHERE d.transaction_id = b.id AND m.transaction_id = d.transaction_id AND m.received_at = d.accepted_at
  AND d.queue || '' = $1 AND d.replay_id IS NULL AND d.redrive_of IS NULL
  AND d.accepted_at >= $4 AND d.accepted_at <= $5 AND (d.accepted_at, d.id) > ($2, $3)
  AND m.received_at >= $4 AND m.received_at <= $5
  AND (CAST($6 AS TEXT) IS NULL OR m.event_code = $6) AND (CAST($7 AS TEXT) IS NULL OR m.mpan = $7)
  AND (CAST($8 AS TEXT) IS NULL OR m.schema_version = $8)
ORDER BY d.accepted_at, d.id LIMIT $9;

-- name: queue_originals
-- a selection by time, first step: the queue's originals in order from its archive index alone
-- (a join here would let PostgreSQL misjudge how many rows match and hash a whole month of two
-- tables to sort it: measured 23 s for 50,000 of 11 million); selection_matching then keeps
-- those whose message matches
SELECT d.id, d.accepted_at, d.transaction_id, d.role, d.kind, d.retention_days
FROM deliveries d
WHERE d.queue = $1 AND d.replay_id IS NULL AND d.redrive_of IS NULL
  AND d.accepted_at >= $4 AND d.accepted_at <= $5 AND (d.accepted_at, d.id) > ($2, $3)
ORDER BY d.accepted_at, d.id LIMIT $6;

-- name: selection_matching
-- which of these messages (received from $2 to $3) are archived and match the event code ($4),
-- MPAN ($5) and schema version ($6)
SELECT m.transaction_id
FROM unnest($1::text[]) AS b(id) CROSS JOIN messages m
WHERE m.transaction_id = b.id AND m.received_at >= $2 AND m.received_at <= $3
  AND (CAST($4 AS TEXT) IS NULL OR m.event_code = $4) AND (CAST($5 AS TEXT) IS NULL OR m.mpan = $5)
  AND (CAST($6 AS TEXT) IS NULL OR m.schema_version = $6);

-- name: mpan_messages
-- a selection by MPAN, first step: the MPAN's messages in order from its index alone, received
-- from $2 to $3, matching the event code ($4) and schema version ($5), at most $6 (joined to the
-- deliveries in one statement, PostgreSQL estimated one row and hashed a month of deliveries:
-- 16 s on the 11-million archive); queue_originals_of then finds their deliveries to the queue
SELECT m.transaction_id, m.received_at
FROM messages m
WHERE m.mpan = $1 AND m.received_at >= $2 AND m.received_at <= $3
  AND (CAST($4 AS TEXT) IS NULL OR m.event_code = $4) AND (CAST($5 AS TEXT) IS NULL OR m.schema_version = $5)
ORDER BY m.received_at LIMIT $6;

-- name: mpan_messages_at
-- the rest of the MPAN's messages received at $2 (a step never ends inside a batch)
SELECT m.transaction_id, m.received_at
FROM messages m
WHERE m.mpan = $1 AND m.received_at = $2
  AND (CAST($3 AS TEXT) IS NULL OR m.event_code = $3) AND (CAST($4 AS TEXT) IS NULL OR m.schema_version = $4);

-- name: queue_originals_of
-- the queue's ($1) original deliveries of these messages ($2), queued from $3 to $4 (an
-- original's accepted_at is its message's received_at). "= ANY" and planned at each run, as
-- stored_messages: the span is often one batch's microsecond.
SELECT d.id, d.accepted_at, d.transaction_id, d.role, d.kind, d.retention_days
FROM deliveries d
WHERE d.transaction_id = ANY($2::text[]) AND d.queue || '' = $1 AND d.replay_id IS NULL AND d.redrive_of IS NULL
  AND d.accepted_at >= $3 AND d.accepted_at <= $4;

-- name: selection_by_ids
{_selection_by_ids};

-- name: count_by_time
-- how many a selection holds (requeue's totalTransactions): the same, no cursor, no limit
SELECT count(*) FROM ({_selection_by_time}) AS s;


-- name: count_by_ids
SELECT count(*) FROM ({_selection_by_ids}) AS s;

-- name: _found
SELECT m.transaction_id, m.interface_id, m.event_code, m.sender_id, m.sur, m.correlation_id, m.mpan, m.received_at,
       m.sender_role, m.dcp_id
FROM messages m

-- name: _narrowed
-- every search (docs/archive.md, "Search"): after the cursor ($1, $2), accepted from $3 to $4,
-- narrowed by channel ($5), event code ($6), MPAN ($7), correlation ID ($8), sender unique
-- reference ($9, of sender $10), and only what participant $11 sent, sent for another, or
-- received; oldest first, at most $12. What drives it ($13) comes first in each statement.
(m.received_at, m.transaction_id) > ($1, $2) AND m.received_at >= $3 AND m.received_at <= $4
  AND (CAST($5 AS TEXT) IS NULL OR m.interface_id = $5) AND (CAST($6 AS TEXT) IS NULL OR m.event_code = $6)
  AND (CAST($7 AS TEXT) IS NULL OR m.mpan = $7) AND (CAST($8 AS TEXT) IS NULL OR m.correlation_id = $8)
  AND (CAST($9 AS TEXT) IS NULL OR (m.sender_id = $10 AND m.sur = $9))
  AND (CAST($11 AS TEXT) IS NULL OR m.sender_id = $11 OR m.dcp_id = $11
       OR EXISTS (SELECT 1 FROM deliveries d WHERE d.transaction_id = m.transaction_id AND d.recipient_id = $11
                  AND d.accepted_at = m.received_at AND d.kind <> 'status'))
ORDER BY m.received_at, m.transaction_id LIMIT $12

-- name: search_by_transaction
{_found} WHERE m.transaction_id = $13 AND {_narrowed};

-- name: search_by_reference
-- $13 is the sender the reference names: sender_references finds its message
{_found} WHERE m.transaction_id = (SELECT r.transaction_id FROM sender_references r WHERE r.sender_id = $13
                                   AND r.sur = $9) AND {_narrowed};

-- name: search_by_correlation
{_found} WHERE m.correlation_id = $13 AND {_narrowed};

-- name: search_by_mpan
{_found} WHERE m.mpan = $13 AND {_narrowed};

-- name: search_by_channel
{_found} WHERE m.interface_id = $13 AND {_narrowed};

-- name: status_messages_for
-- a participant's status messages (its status queue, $1) after the cursor ($2, $3), queued from $4
-- to $5, optionally about one transaction ($6), oldest first, at most $7
SELECT d.id, d.accepted_at, d.transaction_id, d.body
FROM deliveries d
WHERE d.queue = $1 AND d.replay_id IS NULL AND d.redrive_of IS NULL AND d.accepted_at >= $4 AND d.accepted_at <= $5
  AND (d.accepted_at, d.id) > ($2, $3) AND (CAST($6 AS TEXT) IS NULL OR d.transaction_id = $6)
ORDER BY d.accepted_at, d.id LIMIT $7;

-- name: insert_replay_page
INSERT INTO replay_pages (token, caller_id, queue, request_hash, after_at, after_id, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: replay_page
SELECT caller_id, queue, request_hash, after_at, after_id, expires_at FROM replay_pages WHERE token = $1;

-- name: drop_expired_replay_pages
DELETE FROM replay_pages WHERE expires_at < $1;

-- name: take_tokens
-- a token bucket ($1) of $4 tokens at most, refilled at $3 a microsecond: take $2 at $5 when there
-- are as many (a row comes back), else leave it as it is (none does)
INSERT INTO rate_buckets (key, tokens, updated_at) VALUES ($1, CAST($4 AS DOUBLE PRECISION) - $2, $5)
ON CONFLICT (key) DO UPDATE SET
    tokens = (CASE WHEN rate_buckets.tokens + ($5 - rate_buckets.updated_at) * CAST($3 AS DOUBLE PRECISION) > $4
                   THEN CAST($4 AS DOUBLE PRECISION)
                   ELSE rate_buckets.tokens + ($5 - rate_buckets.updated_at) * CAST($3 AS DOUBLE PRECISION) END) - $2,
    updated_at = $5
WHERE (CASE WHEN rate_buckets.tokens + ($5 - rate_buckets.updated_at) * CAST($3 AS DOUBLE PRECISION) > $4
            THEN CAST($4 AS DOUBLE PRECISION)
            ELSE rate_buckets.tokens + ($5 - rate_buckets.updated_at) * CAST($3 AS DOUBLE PRECISION) END) >= $2
RETURNING tokens;

-- name: bucket
SELECT tokens, updated_at FROM rate_buckets WHERE key = $1;

-- name: first_sight
INSERT INTO seen_requests (digest, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- name: forget_sights
DELETE FROM seen_requests WHERE expires_at < $1;

-- name: insert_requeue
INSERT INTO requeues (id, queue, recipient_id, interface_id, requested_by, selection, total, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: claim_requeue
-- the oldest requeue not yet wholly appended that no live node holds
UPDATE requeues SET lease_owner = $1, lease_until = $2 WHERE id IN (
    SELECT id FROM requeues WHERE NOT done AND (lease_until IS NULL OR lease_until < $3)
    ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, queue, recipient_id, interface_id, selection, after_at, after_id;

-- name: advance_requeue
-- one chunk appended: how far the selection is done; nothing when the lease was lost
UPDATE requeues SET appended = appended + $3, after_at = $4, after_id = $5, done = $6, lease_until = $7
WHERE id = $1 AND lease_owner = $2;

-- name: requeue
SELECT queue, total, appended, done, created_at FROM requeues WHERE id = $1;

-- name: requeue_progress
-- of a requeue's deliveries: how many there are, how many are settled (the watermark delivers
-- pending rows at or below it), how many were given up (dead or failed); a redriven row's copy
-- stands in for it
SELECT count(*),
       coalesce(sum(CASE WHEN d.state <> 'pending' OR d.id <= q.delivered_through THEN 1 ELSE 0 END), 0),
       coalesce(sum(CASE WHEN d.state IN ('dead', 'failed') THEN 1 ELSE 0 END), 0)
FROM deliveries d JOIN queues q ON q.queue = d.queue
WHERE d.requeue_id = $1 AND d.state <> 'redriven' AND d.accepted_at >= $2;

-- name: redrive_candidates
-- undelivered deliveries in the given states ($1), optionally one recipient's ($2), one channel's
-- ($3), accepted from $4 to $5, oldest first; $6 at most
SELECT d.id, d.queue, d.transaction_id, d.recipient_id, d.role, d.kind, d.body, d.replay_id, d.requeue_id,
       d.retention_days
FROM unnest($1::text[]) AS b(state) CROSS JOIN deliveries d JOIN queues q ON q.queue = d.queue
WHERE d.state = b.state AND d.state IN ('dead', 'failed', 'rejected')
  AND (CAST($2 AS TEXT) IS NULL OR d.recipient_id = $2) AND (CAST($3 AS TEXT) IS NULL OR q.interface_id = $3)
  AND d.accepted_at >= $4 AND d.accepted_at <= $5
ORDER BY d.id LIMIT $6;

-- name: mark_redriven
-- candidates accepted from $3 to $4
UPDATE deliveries SET state = 'redriven', done_at = $1 FROM unnest($2::bigint[]) AS b(id)
WHERE deliveries.id = b.id AND deliveries.accepted_at >= $3 AND deliveries.accepted_at <= $4;

-- ---------------------------------------------------------------------------------------
-- Retention: the purge (dip.archive.retention) and the jobs that run it

-- name: retention_classes
SELECT days FROM retention_classes ORDER BY days;

-- name: add_retention_class
INSERT INTO retention_classes (days) VALUES ($1) ON CONFLICT DO NOTHING;

-- name: purge_messages
-- where the archive is not partitioned (SQLite): the oldest messages of one retention class ($1)
-- received before $2, at most $3
DELETE FROM messages WHERE transaction_id IN (
    SELECT transaction_id FROM messages WHERE retention_days = $1 AND received_at < $2 ORDER BY received_at LIMIT $3);

-- name: purge_deliveries
-- ... and deliveries, each by its own time (a requeued copy is kept from when it was queued)
DELETE FROM deliveries WHERE id IN (
    SELECT id FROM deliveries WHERE retention_days = $1 AND accepted_at < $2 ORDER BY accepted_at LIMIT $3);

-- name: queue_watermarks
SELECT queue, delivered_through FROM queues ORDER BY queue;

-- name: stale_deliveries
-- a queue's ($1) pending deliveries above its watermark ($2) queued from $3 to $4 that no worker
-- dead-lettered (no node served the queue for days past the deadline), at most $5; queue by
-- queue, so that each read is its pending index above the watermark (one statement over every
-- queue was planned as a scan of a week of deliveries)
SELECT d.id FROM deliveries d
WHERE d.queue = $1 AND d.state = 'pending' AND d.id > $2 AND d.accepted_at >= $3 AND d.accepted_at < $4
ORDER BY d.id LIMIT $5;

-- name: dead_letter_stale
-- ... dead-lettered now ($1), so none is left where queue reads no longer look (claim's floor)
UPDATE deliveries SET state = 'dead', done_at = $1, last_error = 'not delivered in time: dead-lettered by the retention job'
FROM unnest($2::bigint[]) AS b(id) WHERE deliveries.id = b.id AND deliveries.accepted_at >= $3 AND deliveries.accepted_at < $4;

-- name: reference_horizon
-- how far a purge of references before $1 may go this time: the $2-th oldest's time
SELECT max(received_at) FROM (SELECT received_at FROM sender_references WHERE received_at < $1
                              ORDER BY received_at LIMIT $2) AS oldest;

-- name: purge_references
DELETE FROM sender_references WHERE received_at <= $1;

-- name: call_horizon
SELECT max(done_at) FROM (SELECT done_at FROM delivery_calls WHERE done_at < $1 ORDER BY done_at LIMIT $2) AS oldest;

-- name: purge_calls
DELETE FROM delivery_calls WHERE done_at <= $1;

-- name: purge_requeues
-- requeues wholly appended, created before $1
DELETE FROM requeues WHERE done AND created_at < $1;

-- name: add_job
INSERT INTO jobs (name, next_run_at) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- name: claim_job
-- the job is due and no live node holds it
UPDATE jobs SET lease_owner = $2, lease_until = $3
WHERE name = $1 AND next_run_at <= $4 AND (lease_until IS NULL OR lease_until < $4)
RETURNING name;

-- name: finish_job
UPDATE jobs SET next_run_at = $3, last_run_at = $4, last_result = $5, lease_owner = NULL, lease_until = NULL
WHERE name = $1 AND lease_owner = $2;

-- name: job_due_now
UPDATE jobs SET next_run_at = $2 WHERE name = $1;

-- name: job_states
SELECT name, next_run_at, lease_owner, lease_until, last_run_at, last_result FROM jobs ORDER BY name;

-- ---------------------------------------------------------------------------------------
-- Migrations

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,
                                              applied_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP);

-- name: applied_migrations
SELECT version FROM schema_migrations;

-- name: migration_applied
SELECT 1 FROM schema_migrations WHERE version = $1;

-- name: record_migration
INSERT INTO schema_migrations (version, applied_at) VALUES ($1, CURRENT_TIMESTAMP);

-- ---------------------------------------------------------------------------------------
-- The API activity log (dip.audit): append-only hash chains

-- name: insert_activity
INSERT INTO api_activity (chain, seq, at, request_id, caller, status, refused, entry, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: activity_page
SELECT chain, seq, at, request_id, caller, status, refused, entry, hash FROM api_activity
WHERE at >= $1 AND at < $2 AND (at > $3 OR (at = $3 AND (chain > $4 OR (chain = $4 AND seq > $5))))
ORDER BY at, chain, seq LIMIT $6;

-- name: activity_chains
SELECT chain, MIN(seq), MAX(seq), COUNT(*) FROM api_activity GROUP BY chain ORDER BY chain;

-- name: activity_chain
SELECT chain, seq, at, request_id, caller, status, refused, entry, hash FROM api_activity
WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3;

-- name: activity_cuts
SELECT chain, through_seq, hash, at, signature FROM api_activity_cuts ORDER BY chain;

-- name: activity_due
-- per chain, its last entry older than the horizon (with its hash, for the cut)
SELECT a.chain, a.seq, a.hash FROM api_activity a
JOIN (SELECT chain, MAX(seq) AS seq FROM api_activity WHERE at < $1 GROUP BY chain) d
  ON a.chain = d.chain AND a.seq = d.seq;

-- name: put_activity_cut
INSERT INTO api_activity_cuts (chain, through_seq, hash, at, signature) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (chain) DO UPDATE SET through_seq = excluded.through_seq, hash = excluded.hash, at = excluded.at,
    signature = excluded.signature
WHERE api_activity_cuts.through_seq < excluded.through_seq;

-- name: drop_activity
DELETE FROM api_activity WHERE chain = $1 AND seq > $2 AND seq <= $3;

-- name: first_activity
SELECT MIN(seq) FROM api_activity WHERE chain = $1;

-- name: record_signing_certificate
INSERT INTO signing_certificates (fingerprint, cert_pem, first_used_at) VALUES ($1, $2, $3)
ON CONFLICT (fingerprint) DO NOTHING;

-- name: signing_certificates
SELECT cert_pem FROM signing_certificates ORDER BY first_used_at;

-- ---------------------------------------------------------------------------------------
-- Encryption at rest: data keys, wrapped by a key-encryption key kept outside the database

-- name: insert_data_key
INSERT INTO data_keys (id, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4);

-- name: data_keys
SELECT k.id, k.kek_id, k.wrapped FROM unnest($1::text[]) AS w(id) JOIN data_keys k ON k.id = w.id;

-- name: all_data_keys
SELECT id, kek_id, wrapped FROM data_keys ORDER BY id;

-- name: rewrap_data_key
UPDATE data_keys SET kek_id = $2, wrapped = $3 WHERE id = $1 AND kek_id = $4;

-- ---------------------------------------------------------------------------------------
-- IF-021 submission limits (E2E 6.1)

-- name: submission_limits
SELECT participant_id, mode, portfolio, measured_portfolio, measured_at FROM submission_limits;

-- name: put_submission_limit
INSERT INTO submission_limits (participant_id, mode, portfolio, updated_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (participant_id) DO UPDATE SET mode = excluded.mode, portfolio = excluded.portfolio,
    updated_at = excluded.updated_at;

-- name: measure_portfolios
-- distinct MPANs each sender submitted on the channel since $2 (the E2E 6.1 portfolio)
SELECT sender_id, COUNT(DISTINCT mpan) FROM messages
WHERE interface_id = $1 AND received_at >= $2 AND mpan IS NOT NULL GROUP BY sender_id;

-- name: record_portfolio
INSERT INTO submission_limits (participant_id, mode, measured_portfolio, measured_at, updated_at)
VALUES ($1, $2, $3, $4, $4)
ON CONFLICT (participant_id) DO UPDATE SET measured_portfolio = excluded.measured_portfolio,
    measured_at = excluded.measured_at;

-- name: count_submission
-- add the messages to this hour's count, unless ($4) that would pass the hour's limit; the new count
INSERT INTO submission_counts (participant_id, hour, messages) VALUES ($1, $2, $3)
ON CONFLICT (participant_id, hour) DO UPDATE SET messages = submission_counts.messages + excluded.messages
WHERE submission_counts.messages + excluded.messages <= $4
RETURNING messages;

-- name: note_over_soft
UPDATE submission_counts SET over_soft = over_soft + $3 WHERE participant_id = $1 AND hour = $2;

-- name: submitted_since
SELECT hour, messages, over_soft FROM submission_counts WHERE participant_id = $1 AND hour >= $2 ORDER BY hour;

-- name: forget_submission_counts
DELETE FROM submission_counts WHERE hour < $1;

-- name: rotate_identity
UPDATE dip_identity SET key_pem = $1, cert_pem = $2, created_at = $3 WHERE id = 1 AND cert_pem = $4;

-- name: retire_signing_cert
INSERT INTO retired_signing_certs (fingerprint, cert_pem, retires_at) VALUES ($1, $2, $3)
ON CONFLICT (fingerprint) DO UPDATE SET retires_at = excluded.retires_at;

-- name: served_retired_certs
SELECT cert_pem, retires_at FROM retired_signing_certs WHERE retires_at > $1 ORDER BY retires_at DESC;

-- ---------------------------------------------------------------------------------------
-- Shutdown: what a stopping node holds is handed back at once (another node need not wait for
-- the lease to lapse)

-- name: release_leases
UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1;

-- name: release_jobs
UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1;
