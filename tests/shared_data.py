"""Where the shared test data lies: ``../shared/data`` beside the checkout, wherever that is."""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FSDD_RECORDINGS = SHARED / "fsdd" / "recordings"
