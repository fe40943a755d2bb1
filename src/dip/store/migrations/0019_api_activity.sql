-- The API activity log (DIP FS 5.8.1; issue 17; docs/security.md "API activity log"): one row
-- per request, in hash chains. Each process that serves the API writes a chain of its own
-- (``chain``: its name), numbered from 1 without gaps; ``hash`` is the SHA-256 of the previous
-- entry's hash and this entry's JSON (``entry``, kept as a zstd frame). Signed checkpoints of
-- the chains' heads are written outside the database (the audit directory).
CREATE TABLE api_activity (
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    caller TEXT,
    status INTEGER NOT NULL,
    refused INTEGER NOT NULL,
    entry BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX api_activity_time ON api_activity (at, chain, seq);
CREATE INDEX api_activity_caller ON api_activity (caller, at);
-- What the log's own retention removed from the start of a chain: entries 1..through_seq, the
-- last of them with this hash, signed by the DIP (so the chain is checked from there on). Only
-- entries a cut covers can be deleted (the guards of the next migrations).
CREATE TABLE api_activity_cuts (
    chain TEXT PRIMARY KEY,
    through_seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    at BIGINT NOT NULL,
    signature BYTEA NOT NULL
)
