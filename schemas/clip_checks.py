"""Plain words for the decoded-clip checks a clip failed, with the clip's own values.

The clip expectation suite (:func:`schemas.expectations.clip_suite`) names a failed check
``<expectation type>:<column>``, for example ``expect_column_values_to_be_between:silence_ratio``;
:func:`describe_failed_clip_checks` says what is wrong with the clip ("100% of its 100 ms frames
are silent, more than the 99% accepted (--max-silence)") and keeps the name in brackets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from schemas.check_words import NOT_NULL, say_failed_checks

_BETWEEN = "expect_column_values_to_be_between:"
_IN_SET = "expect_column_values_to_be_in_set:"


def clip_coverage(meta: Mapping) -> float:
    """Delivered over requested seconds, as the clip suite checks it (an early start trimmed
    off does not count as delivered)."""
    kept = meta["delivered_seconds"] - meta.get("early_start_trimmed_s", 0.0)
    return kept / max(meta["requested_seconds"], 1e-9)


def _coverage(meta: Mapping, limits: Mapping) -> str:
    share = clip_coverage(meta)
    said = f"delivered {meta['delivered_seconds']:.3g} s of the {meta['requested_seconds']:.3g} s"
    if share < limits["min_coverage"]:
        return (
            f"{said} requested ({share:.0%}), less than the {limits['min_coverage']:.0%} "
            "required (--min-coverage)"
        )
    return f"{said} requested ({share:.0%}): more than the source can hold"


_PLAIN: dict[str, Callable[[Mapping, Mapping], str]] = {
    "expect_column_values_to_be_unique:clip_id": lambda m, _: (
        f"clip id {m['clip_id']!r} is used by another clip of the shard"
    ),
    _IN_SET + "sample_rate": lambda m, lim: (
        f"decoded at {m['sample_rate']} Hz, not {lim['target_sr']} Hz"
    ),
    _IN_SET + "channels": lambda m, _: f"decoded to {m['channels']} channels, not 1",
    _BETWEEN + "source_sample_rate": lambda m, _: (
        f"the source's rate of {m['source_sample_rate']} Hz is implausible"
    ),
    _BETWEEN + "source_channels": lambda m, _: "the source has no audio channel",
    _BETWEEN + "requested_seconds": lambda m, _: (
        f"the requested duration {m['requested_seconds']:g} s is not positive"
    ),
    _BETWEEN + "delivered_seconds": lambda m, _: (
        f"the delivered duration {m['delivered_seconds']:g} s is negative"
    ),
    _BETWEEN + "coverage": _coverage,
    _BETWEEN + "peak": lambda m, _: f"peak {m['peak']:.3g} is beyond full scale",
    _BETWEEN + "clipping_ratio": lambda m, lim: (
        f"{m['clipping_ratio']:.2%} of its samples clip, more than the "
        f"{lim['max_clipping']:.2%} accepted (--max-clipping)"
    ),
    _BETWEEN + "silence_ratio": lambda m, lim: (
        f"{m['silence_ratio']:.0%} of its 100 ms frames are silent, more than "
        f"the {lim['max_silence']:.0%} accepted (--max-silence)"
    ),
}


def describe_failed_clip_checks(meta: Mapping, names: Sequence[str], limits: Mapping) -> str:
    """Say what is wrong with a decoded clip, one clause per failed clip check.

    Parameters
    ----------
    meta : mapping
        The clip's metadata as the suite saw it (``schemas.expectations.CLIP_COLUMNS``, and
        ``early_start_trimmed_s`` when a section cut started early).
    names : sequence of str
        Its failed checks, as the validation names them (``<type>:<column>``).
    limits : mapping
        The suite's arguments: ``target_sr``, ``min_coverage``, ``max_clipping``,
        ``max_silence``.

    Returns
    -------
    str
        Clauses joined by ``"; "``, each followed by the check's name in brackets. A check
        without plain words here gives its column's value, or its name alone.
    """

    def say(name: str) -> str | None:
        if name in _PLAIN:
            return _PLAIN[name](meta, limits)
        column = name.partition(":")[2]
        if name.startswith(NOT_NULL) or column not in meta:
            return None
        return f"{column} is {meta[column]!r}"

    return say_failed_checks(names, say)
