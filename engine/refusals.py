"""Refusals kept to be raised later, without reference cycles.

A reply (engine/actor.py) and a query's result (engine/subscriptions.py) keep the
`TurnstileError` that refused them, and each caller raises it. A raised exception's traceback
holds the frames it passed and, through their callers, what they hold, such as the reply that
holds the exception: a reference cycle, which only the garbage collector frees (38 objects per
refused join before this module, 19 per refused query; `python -m lab.gc_pauses`). So a
refusal is kept `stored` (no tracebacks in its chain) and raised as a `fresh` copy, whose
traceback nothing it reaches holds. Without a cycle a refused command's objects go by
reference counting, as an accepted one's do, which is what `engine.tune_gc`'s thresholds
count on.
"""

from __future__ import annotations

from domain.errors import TurnstileError


def stored(error: TurnstileError) -> TurnstileError:
    """`error`, and every exception it was raised from or while handling, without its
    traceback: the form in which a refusal is kept."""
    seen: set[int] = set()
    chain: list[BaseException | None] = [error]
    while chain:
        link = chain.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        link.__traceback__ = None
        chain += (link.__cause__, link.__context__)
    return error


def fresh(error: TurnstileError) -> TurnstileError:
    """A copy of a `stored` refusal to raise (its type, message, details and cause), so that
    the traceback the raise gives it holds nothing that holds it."""
    copy = BaseException.__new__(type(error))
    copy.args = error.args
    copy.__dict__.update(error.__dict__)
    copy.__cause__ = error.__cause__
    copy.__suppress_context__ = error.__suppress_context__
    return copy
