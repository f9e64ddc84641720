"""Operators' routes, admin key only (`Authorization: Convex <admin key>`):

- `POST /releases/ingest`: a deploy pipeline reports a deployment, as JSON `{deploymentId (or
  id), status, commit, service, deployedAt (or time): ms since the epoch or an ISO 8601 time}`;
  it becomes `releases:record` (domain.releases), durable before the 200 `{"releaseId"}`.
- `POST /cron/JOB`: run declared cron job JOB now, beside its schedule (which stays as it is);
  200 `{"job", "commands", "refused"}` once its commands have run, 404 for a job nobody
  declared.

Without the admin key: 401 (a credential that is not valid) or 403 (none, or a user's); a body
that is not what the route takes: 400. Nothing is written then.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from domain.errors import TurnstileError
from domain.identity import ADMIN
from engine.server.api import (
    STATUS_FUNCTION_FAILED,
    HttpRequest,
    HttpResponse,
    error_response,
    identify,
    json_response,
    method_not_allowed,
)
from engine.server.auth import AuthFailed
from engine.server.context import ServerContext

RELEASES_PATH = "/releases/ingest"
CRON_PREFIX = "/cron/"


def _refused(status: int, message: str) -> HttpResponse:
    return json_response(status, {"status": "error", "errorMessage": message})


async def _admin_post(ctx: ServerContext, request: HttpRequest) -> HttpResponse | None:
    """None if the request is an admin's POST; else the answer that refuses it."""
    if request.method != b"POST":
        return method_not_allowed(b"POST, OPTIONS")
    try:
        identity = await identify(ctx.authenticator, request.headers.get(b"authorization"))
    except AuthFailed as error:
        return error_response(401, error)
    if not identity.is_admin:
        return _refused(403, "This route needs the admin key (Authorization: Convex <key>).")
    return None


def _time_ms(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return int(parsed.timestamp() * 1000)
    return None


def _release_args(body: bytes) -> dict[str, Any] | str:
    """`releases:record`'s args from a pipeline's JSON, or what is wrong with it."""
    try:
        report = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "The body is not JSON."
    if not isinstance(report, dict):
        return "The body is a JSON object."
    deployed_at = _time_ms(report.get("deployedAt", report.get("time")))
    if deployed_at is None:
        return "deployedAt (or time) is ms since the epoch or an ISO 8601 time."
    args = {
        "deploymentId": report.get("deploymentId", report.get("id")),
        "service": report.get("service"),
        "commit": report.get("commit"),
        "status": report.get("status"),
        "deployedAt": deployed_at,
    }
    missing = [name for name, value in args.items() if not isinstance(value, str | int)]
    if missing:
        return f"The report needs {', '.join(missing)}."
    return args


async def ingest_release(ctx: ServerContext, request: HttpRequest) -> HttpResponse:
    refusal = await _admin_post(ctx, request)
    if refusal is not None:
        ctx.metrics.webhooks.labels("releases", "refused").inc()
        return refusal
    args = _release_args(request.body)
    if isinstance(args, str):
        ctx.metrics.webhooks.labels("releases", "refused").inc()
        return _refused(400, args)
    try:
        outcome = await ctx.engine.mutation("releases:record", args, ADMIN)
    except TurnstileError as error:
        ctx.metrics.webhooks.labels("releases", "failed").inc()
        status = 400 if error.code == "InvalidArgs" else STATUS_FUNCTION_FAILED
        return error_response(status, error)
    ctx.metrics.webhooks.labels("releases", "recorded").inc()
    return json_response(200, {"releaseId": outcome.value})


async def run_cron_job(ctx: ServerContext, request: HttpRequest) -> HttpResponse:
    refusal = await _admin_post(ctx, request)
    if refusal is not None:
        ctx.metrics.webhooks.labels("cron", "refused").inc()
        return refusal
    name = request.path.removeprefix(CRON_PREFIX)
    try:
        commands, refused = await ctx.engine.scheduler.run_now(name)
    except KeyError:
        return _refused(404, f"No cron job {name!r} is declared.")
    ctx.metrics.webhooks.labels("cron", "recorded").inc()
    return json_response(200, {"job": name, "commands": commands, "refused": list(refused)})


__all__ = ["CRON_PREFIX", "RELEASES_PATH", "ingest_release", "run_cron_job"]
