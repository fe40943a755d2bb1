-- Revoking one API key or one certificate without off-boarding its participant (issue 17;
-- API contract section 5), and off-boarding that revokes every credential for good: a revoked
-- credential stays on record (who held it, when it was revoked) and never works again, even
-- when its participant is on-boarded again.
ALTER TABLE api_keys ADD COLUMN revoked_at BIGINT;
ALTER TABLE certificates ADD COLUMN revoked_at BIGINT;
