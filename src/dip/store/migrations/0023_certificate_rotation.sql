-- Rotating a participant's certificate with an overlap (issue 17; docs/security.md "Certificate
-- service"): the old certificate keeps working until retires_at, then no longer (as if revoked).
-- Whether the DIP issued a certificate (from a CSR, as the test environments' CA) is recorded.
ALTER TABLE certificates ADD COLUMN retires_at BIGINT;
ALTER TABLE certificates ADD COLUMN issued_by_dip BOOLEAN NOT NULL DEFAULT FALSE
