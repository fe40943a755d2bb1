-- Webhooks participants register for publications (per channel) and for status messages.
-- interface_id is '' for the status-message webhook.
CREATE TABLE webhooks (
    participant_id TEXT NOT NULL REFERENCES participants (id),
    kind TEXT NOT NULL,
    interface_id TEXT NOT NULL,
    url TEXT NOT NULL,
    max_message_count INTEGER NOT NULL,
    max_payload_kb INTEGER NOT NULL,
    registered_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (participant_id, kind, interface_id)
);

-- The DIP's own signing identity, shared by every node (unless given on the command line).
CREATE TABLE dip_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_pem TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
