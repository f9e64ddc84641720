"""Convex's sync protocol over WebSocket: one `SyncSession` per connection."""

from engine.sync.session import SyncSession, run_sync_session

__all__ = ["SyncSession", "run_sync_session"]
