"""Sync sessions: watch folders, wait until files settle, enqueue them while acquisition runs."""
