"""The notification document that query results carry, shaped like a Convex document
rows (`_id`, `_creationTime`, fields): a plain JSON-able dict with camelCase keys."""

from __future__ import annotations

from typing import Any

from domain.notifications.state import Notification

Doc = dict[str, Any]


def notification_doc(n: Notification) -> Doc:
    return {
        "_id": n.id,
        "_creationTime": n.created_at,
        "type": n.type,
        "userId": n.user_id,
        "data": dict(n.data),
        "createdAt": n.created_at,
        "expiresAt": n.expires_at,
    }
