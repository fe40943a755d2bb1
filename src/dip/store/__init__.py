"""Persistence: a narrow Store interface (base.py) with SQLite and PostgreSQL implementations."""

from dip.store.base import DirectoryRows, MessageBatch, MessageRow, ParticipantRow, Store, open_store

__all__ = ["DirectoryRows", "MessageBatch", "MessageRow", "ParticipantRow", "Store", "open_store"]
