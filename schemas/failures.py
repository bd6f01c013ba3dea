"""Failure classes for clips that could not be ingested.

Every requested clip that does not land in a shard gets exactly one of these reasons in the
ledger. Reasons are split into *transient* ones (worth retrying on a later run: the server may
answer next time) and *permanent* ones (the same request will fail the same way; a re-run skips
them unless asked to retry them).
"""

from __future__ import annotations

from enum import StrEnum


class FailureReason(StrEnum):
    """Machine-readable reason a clip failed, as stored in the ledger's ``reason`` column."""

    UNAVAILABLE = "unavailable"
    PRIVATE = "private"
    REMOVED = "removed"
    GEO_BLOCKED = "geo_blocked"
    SIGN_IN_REQUIRED = "sign_in_required"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"
    SERVER_ERROR = "server_error"
    NETWORK_ERROR = "network_error"
    NOT_FOUND = "not_found"
    DECODE_ERROR = "decode_error"
    TOO_SHORT = "too_short"
    VALIDATION = "validation"

    @property
    def transient(self) -> bool:
        """Whether a later run should try this clip again."""
        return self in TRANSIENT_REASONS


TRANSIENT_REASONS = frozenset(
    {
        FailureReason.RATE_LIMITED,
        FailureReason.TIMEOUT,
        FailureReason.SERVER_ERROR,
        FailureReason.NETWORK_ERROR,
    }
)


class ClipFailure(Exception):
    """A clip could not be fetched, decoded or accepted.

    Parameters
    ----------
    reason : FailureReason
        The failure class recorded in the ledger.
    detail : str
        A human-readable explanation (the server's message, the decoder's error, the failed check).
    attempts : int
        How many fetch attempts were made before giving up.
    """

    def __init__(self, reason: FailureReason, detail: str, attempts: int = 1) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = FailureReason(reason)
        self.detail = detail
        self.attempts = attempts

    @property
    def transient(self) -> bool:
        """Whether the failure is worth retrying on a later run."""
        return self.reason.transient
