-- Rotating the DIP's own signing key while the database keeps it (POST /admin/signing-key/rotate):
-- dip_identity holds the key it signs with now; the certificates it signed with before stay
-- published by GET /dip/certificate until retires_at (the overlap), so recipients can trust the
-- new one before the old one goes.
CREATE TABLE retired_signing_certs (
    fingerprint TEXT PRIMARY KEY,
    cert_pem TEXT NOT NULL,
    retires_at BIGINT NOT NULL
)
