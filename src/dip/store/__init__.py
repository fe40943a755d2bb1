"""Persistence: a narrow Store interface (base.py) with SQLite and PostgreSQL implementations."""

from dip.store.base import (
    AppointmentRow,
    Claim,
    DeliveryRow,
    DirectoryRows,
    MessageBatch,
    MessageRow,
    ParticipantRow,
    PendingDelivery,
    Settlement,
    Store,
    WebhookRow,
    open_store,
)

__all__ = [
    "AppointmentRow", "Claim", "DeliveryRow", "DirectoryRows", "MessageBatch", "MessageRow", "ParticipantRow",
    "PendingDelivery", "Settlement", "Store", "WebhookRow", "open_store",
]
