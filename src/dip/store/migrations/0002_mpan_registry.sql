-- The MPAN address registry: who holds which role for an MPAN, from when to when (FS 5.5.14).
-- Dates are YYYY-MM-DD text (they sort as dates); effective_to is inclusive, NULL = open-ended.
-- seq is the registry version of the batch that last wrote the row, so nodes can fetch changes.
CREATE TABLE mpan_appointments (
    mpan TEXT NOT NULL,
    role TEXT NOT NULL,
    effective_from TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    effective_to TEXT,
    seq BIGINT NOT NULL,
    PRIMARY KEY (mpan, role, effective_from)
);
CREATE INDEX mpan_appointments_seq ON mpan_appointments (seq);
INSERT INTO meta (key, value) VALUES ('registry_seq', 0);
