"""The archive's use cases: replay, requeue, redrive (docs/archive.md)."""
