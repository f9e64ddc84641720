"""The argument objects of the notification functions (docs/reference/functions.md).

Field names are snake_case; the codec maps them to the wire's camelCase and checks types
strictly. `data` is free-form JSON: the codec only checks that it is an object (an
`immutables.Map` whose values are whatever the wire decoded); the handler checks the rest
(`domain.notifications.payload`).
"""

from __future__ import annotations

from typing import Any

import attrs
import immutables

from domain.pagination import PaginationOpts


@attrs.frozen(kw_only=True)
class EmitWebhookEventArgs:
    """`{type, userId, data}`: webhooks:emitWebhookEvent."""

    type: str
    user_id: str
    data: immutables.Map[str, Any]


@attrs.frozen(kw_only=True)
class UserWebhookEventsArgs:
    """`{userId, since, paginationOpts?}`: webhooks:getUserWebhookEvents; `since` is ms since
    the epoch (any JavaScript number, as `Date.now() - 60000` gives it)."""

    user_id: str
    since: float
    pagination_opts: PaginationOpts | None = None
