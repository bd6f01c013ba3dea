"""Join plain words for failed expectation checks, each followed by the check's name.

The segment and clip suites name a failed check ``<expectation type>:<column(s)>``;
:mod:`schemas.segment_checks` and :mod:`schemas.clip_checks` say what each one means for a row,
and :func:`say_failed_checks` puts the clauses together the same way for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

NOT_NULL = "expect_column_values_to_not_be_null:"


def say_failed_checks(names: Sequence[str], say: Callable[[str], str | None]) -> str:
    """One clause per failed check, joined by ``"; "``.

    Parameters
    ----------
    names : sequence of str
        The failed checks, as the validation names them.
    say : callable
        Plain words for a check name, or None when it has none.

    Returns
    -------
    str
        ``"<words> [<name>]"`` per check; a not-null check without words is ``"<column> is
        missing"``, any other check without words is ``"failed <name>"``.
    """
    clauses = []
    for name in names:
        said = say(name)
        if said is None and name.startswith(NOT_NULL):
            said = f"{name[len(NOT_NULL) :]} is missing"
        clauses.append(f"failed {name}" if said is None else f"{said} [{name}]")
    return "; ".join(clauses)
