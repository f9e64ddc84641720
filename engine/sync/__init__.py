"""The server half of Convex's sync protocol: one `SyncSession` per WebSocket connection, the
one fan-out loop that writes them all, and the limits they are held to.

Below `engine.server` (which runs the sessions) and above the engine and `engine.wire`: nothing
here imports the front door. The client half is `engine.client`.
"""

from engine.sync.session import SyncSession, run_sync_session

__all__ = ["SyncSession", "run_sync_session"]
