"""The app the hostile clients attack beside the built-in one (`lab.hostile.target` serves it):
an action and two HTTP routes whose every answer a case can predict (`echo_outcome`).

- `hostile:echo` (action) `{text}` -> `text`;
- `POST /hostile/echo` -> 200 `{"bytes", "caller"}`: the body's length and the caller's subject;
- `GET /hostile/files/...` (a prefix) -> 200 `{"path"}`.
"""

from __future__ import annotations

from typing import Any

import attrs

from domain import (
    ActionContext,
    ActionSpec,
    App,
    HttpRoute,
    InvalidArgs,
    RouteRequest,
    RouteResponse,
)
from engine import codec
from engine.wire.values import json_to_convex

ECHO = "hostile:echo"
ECHO_PATH = "/hostile/echo"
FILES_PREFIX = "/hostile/files/"


@attrs.frozen(kw_only=True)
class EchoArgs:
    text: str


async def echo(ctx: ActionContext, args: EchoArgs) -> str:
    return args.text


def echo_outcome(args: Any) -> tuple[str, Any]:
    """What `hostile:echo` answers wire `args`: ("success", the text) or ("InvalidArgs", None)."""
    try:
        return "success", codec.decode_args(json_to_convex(args), EchoArgs).text
    except InvalidArgs:
        return "InvalidArgs", None


async def echo_route(ctx: ActionContext, request: RouteRequest) -> RouteResponse:
    return RouteResponse.of_json({"bytes": len(request.body), "caller": ctx.identity.subject})


async def files_route(ctx: ActionContext, request: RouteRequest) -> RouteResponse:
    return RouteResponse.of_json({"path": request.path})


app = App(
    name="hostile",
    actions=(ActionSpec(name=ECHO, args_type=EchoArgs, run=echo),),
    routes=(
        HttpRoute(method="POST", path=ECHO_PATH, handle=echo_route),
        HttpRoute(method="GET", path=FILES_PREFIX, prefix=True, handle=files_route),
    ),
)
