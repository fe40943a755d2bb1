-- Token buckets of the rate limits that must hold across API nodes (issue 17): one row per
-- limited key (a participant's messages), in the database every node shares.
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL
);
