-- Signed requests already taken on the routes that change state (webhook configuration, status
-- messages, requeues): a byte-identical copy within the signature's time window is refused
-- (docs/security.md, "Replayed requests"). Keyed by the SHA-256 of the signature; kept until the
-- window has passed, then dropped by the retention job. In the database, so that a copy sent to
-- another API node is refused too.
CREATE TABLE seen_requests (
    digest BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX seen_requests_expiry ON seen_requests (expires_at);
