"""Plain words for the segment checks a segment failed, with the segment's own values.

The segment expectation suite (:func:`schemas.expectations.segment_suite`) names a failed check
``<expectation type>:<column(s)>``, for example
``expect_column_pair_values_a_to_be_greater_than_b:end_s,start_s``. That name is what Data Docs
and the ledger key on, but it tells a user little; :func:`describe_failed_checks` says what is
wrong with the row ("end 1 s is not after start 3 s") and keeps the name in brackets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from schemas.check_words import say_failed_checks
from schemas.segments import Segment


def _time(value: float | None) -> str:
    return "none" if value is None else f"{value:g} s"


def _order(seg: Segment, _: float) -> str:
    if seg.start_s is None or seg.end_s is None:
        return f"start {_time(seg.start_s)} and end {_time(seg.end_s)}: give both or neither"
    return f"end {_time(seg.end_s)} is not after start {_time(seg.start_s)}"


def _duration(seg: Segment, max_duration_s: float) -> str:
    return f"the segment is {seg.duration_s:g} s long, longer than the {max_duration_s:g} s allowed"


_PLAIN: dict[str, Callable[[Segment, float], str]] = {
    "expect_column_values_to_be_unique:clip_id": lambda s, _: (
        f"clip id {s.clip_id!r} is used by another segment"
    ),
    "expect_column_values_to_match_regex:clip_id": lambda s, _: (
        f"clip id {s.clip_id[:80]!r} is not 1 to 200 letters, digits, '_', '.' or '-'"
    ),
    "expect_column_values_to_not_match_regex:clip_id": lambda s, _: (
        f"clip id {s.clip_id[:80]!r} starts with '.'"
    ),
    "expect_column_values_to_be_between:start_s": lambda s, _: (
        f"start {_time(s.start_s)} is negative"
    ),
    "expect_column_pair_values_a_to_be_greater_than_b:end_s,start_s": _order,
    "expect_column_values_to_be_between:duration_s": _duration,
    "expect_column_values_to_be_between:num_unknown_labels": lambda s, _: (
        "labels not in the class map: " + ", ".join(repr(x) for x in s.unknown_labels)
    ),
    "expect_column_values_to_be_between:num_invalid_labels": lambda s, _: (
        f"labels {list(s.labels)} are not all non-negative class indices"
    ),
}


def describe_failed_checks(seg: Segment, names: Sequence[str], max_duration_s: float) -> str:
    """Say what is wrong with ``seg``, one clause per failed segment check.

    Parameters
    ----------
    seg : Segment
        The segment that failed.
    names : sequence of str
        Its failed checks, as the validation names them (``<type>:<columns>``).
    max_duration_s : float
        The longest segment the suite accepted.

    Returns
    -------
    str
        Clauses joined by ``"; "``, each followed by the check's name in brackets, for example
        ``"end 1 s is not after start 3 s [expect_column_pair_values_a_to_be_greater_than_b:
        end_s,start_s]"``. A check without plain words here is given by its name alone.
    """
    return say_failed_checks(
        names, lambda name: _PLAIN[name](seg, max_duration_s) if name in _PLAIN else None
    )
