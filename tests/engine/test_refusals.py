"""engine/refusals.py: a refusal is kept with no traceback anywhere in its chain, and raised as
a copy that says the same to its caller."""

from __future__ import annotations

import pytest

from domain.errors import Conflict, RateLimited, TurnstileError
from engine import refusals


def raised_while_handling() -> TurnstileError:
    """A Conflict raised while handling a ValueError that was raised from a KeyError."""
    found: dict[str, int] = {}
    refusal = Conflict("Already there.", total=3)
    try:
        try:
            found["missing"]
        except KeyError as missing:
            raise ValueError("while looking") from missing
    except ValueError:
        try:
            raise refusal  # its __context__: the ValueError
        except Conflict:
            pass
    return refusal


def has_traceback(error: BaseException | None) -> bool:
    return error is not None and error.__traceback__ is not None


def test_a_kept_refusal_has_no_traceback_in_its_whole_chain() -> None:
    error = raised_while_handling()
    context = error.__context__
    cause = None if context is None else context.__cause__
    assert has_traceback(error) and has_traceback(context) and has_traceback(cause)
    assert refusals.stored(error) is error
    assert error.__context__ is context and context is not None and context.__cause__ is cause
    assert not has_traceback(error) and not has_traceback(context) and not has_traceback(cause)


def test_a_raised_copy_says_what_the_kept_one_says() -> None:
    kept = refusals.stored(RateLimited("Too many.", retry_after_ms=1_500))
    kept.__cause__ = ValueError("why")
    with pytest.raises(RateLimited) as raised:
        raise refusals.fresh(kept)
    copy = raised.value
    assert copy is not kept and not has_traceback(kept) and has_traceback(copy)
    assert copy.args == kept.args and copy.message == "Too many."
    assert copy.details == kept.details == {"retryAfter": 1_500}
    assert copy.data() == kept.data() and copy.__cause__ is kept.__cause__
