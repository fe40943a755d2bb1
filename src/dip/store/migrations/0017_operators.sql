-- Operators, each with a key of their own and a role (issue 17; API contract section 5):
-- administrators change things, support and auditors read. The keys in admin_keys (the first
-- one from DIP_ADMIN_API_KEY, or generated) are administrators'.
CREATE TABLE operators (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX operators_key ON operators (key_hash);
