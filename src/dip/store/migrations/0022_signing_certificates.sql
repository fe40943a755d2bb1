-- Every certificate the DIP has signed with (its own key's in dip_identity, or one from
-- --signing-key/--signing-cert files), recorded by each node at start: public, so that what it
-- signed long ago (the activity log's checkpoints and cuts) can still be checked after the key
-- was rotated. `dip audit verify --certificate` pins the ones to trust instead.
CREATE TABLE signing_certificates (
    fingerprint TEXT PRIMARY KEY,
    cert_pem TEXT NOT NULL,
    first_used_at BIGINT NOT NULL
)
