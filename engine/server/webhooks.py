"""Turnstile's own HTTP routes beside the apps': the webhooks and operations built in.

- `POST /stripe/webhook` (engine.server.stripe_webhook): Stripe's events as notifications.
- `POST /releases/ingest` and `POST /cron/JOB` (engine.server.operations): a deploy pipeline's
  deployments, and a cron job run now; both need the admin key.

No app route may take these paths (`domain.routes.BUILTIN_ROUTES`); `ROUTES` maps each exact
path, or "/prefix/", to its handler, and `engine.server.api` consults it before the apps'.
"""

from __future__ import annotations

from engine.server.context import BuiltinRoute
from engine.server.operations import CRON_PREFIX, RELEASES_PATH, ingest_release, run_cron_job
from engine.server.stripe_webhook import PATH as STRIPE_PATH
from engine.server.stripe_webhook import handle as stripe_webhook

ROUTES: dict[str, BuiltinRoute] = {
    STRIPE_PATH: stripe_webhook,
    RELEASES_PATH: ingest_release,
    CRON_PREFIX: run_cron_job,
}

__all__ = ["ROUTES"]
