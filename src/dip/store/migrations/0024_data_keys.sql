-- Encryption at rest (dip.store.encryption; docs/security.md "Encryption at rest"): the data
-- keys that encrypt archived payloads, each wrapped (AES-256-GCM) by a key-encryption key the
-- database never holds (kek_id names it). A data key is never changed or dropped while a
-- payload may need it; rotating the KEK re-wraps the rows (dip keys rewrap).
CREATE TABLE data_keys (
    id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    created_at BIGINT NOT NULL
)
