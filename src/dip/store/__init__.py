"""Persistence: a narrow Store interface (base.py) with SQLite and PostgreSQL implementations."""

from dip.store.base import (
    AppointmentRow,
    DirectoryRows,
    MessageBatch,
    MessageRow,
    ParticipantRow,
    Store,
    WebhookRow,
    open_store,
)

__all__ = [
    "AppointmentRow", "DirectoryRows", "MessageBatch", "MessageRow", "ParticipantRow", "Store", "WebhookRow",
    "open_store",
]
