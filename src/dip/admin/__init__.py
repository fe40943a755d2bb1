"""The operator's and participants' administration: participants, channels, webhooks, the
MPAN registry, and the read-side views of what became of messages."""
