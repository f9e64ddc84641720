"""Id formats. Ids are opaque to clients, but the engine must route a command that names only a
child record (a ticket, a waiting-list entry) to the aggregate that owns it, so child ids embed
their owner: `ev_<core>` owns `tk_<core>_<n>` and `wl_<core>_<n>`.

The random part of a root id comes from the engine (`Decision.new_token`); child suffixes are
counters in the owner's state, so replay reproduces them exactly.
"""

from __future__ import annotations

import re

_TOKEN = r"[a-z0-9]{4,40}"
_ROOT = re.compile(rf"^(?P<prefix>[a-z]{{2,4}})_(?P<core>{_TOKEN})$")
_CHILD = re.compile(rf"^(?P<prefix>[a-z]{{2,4}})_(?P<core>{_TOKEN})_(?P<n>[a-z0-9]{{1,12}})$")


def root_id(prefix: str, token: str) -> str:
    return f"{prefix}_{token}"


def child_id(prefix: str, owner_id: str, n: int) -> str:
    core = owner_id.partition("_")[2]
    return f"{prefix}_{core}_{_base36(n)}"


def owner_of(child: str, child_prefix: str, owner_prefix: str) -> str | None:
    """The owning root id of a well-formed child id with that prefix, else None."""
    match = _CHILD.match(child)
    if match is None or match["prefix"] != child_prefix:
        return None
    return f"{owner_prefix}_{match['core']}"


def is_root_id(value: str, prefix: str) -> bool:
    match = _ROOT.match(value)
    return match is not None and match["prefix"] == prefix


#: Base-36 forms of the numbers below `_CACHED` already made (child ids number their
#: children from 0: most are small, and each is made on every command that names one).
_BASE36: dict[int, str] = {}
_CACHED = 1 << 16


def _base36(n: int) -> str:
    text = _BASE36.get(n)
    if text is not None:
        return text
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    m = n
    while m:
        m, r = divmod(m, 36)
        out.append(digits[r])
    text = "".join(reversed(out)) or "0"
    if 0 <= n < _CACHED:
        _BASE36[n] = text
    return text
