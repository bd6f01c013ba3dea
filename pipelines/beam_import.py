"""Apache Beam, imported without the warning its import logs on the root logger.

Importing ``apache_beam`` without Google's ``apitools`` (the ``gcp`` extra, which ingest does
not use) calls ``logging.warning("apitools not found, ...")`` at module level. With no handler
on the root logger that prints the line on every ``audiomill ingest`` and, through
``logging.basicConfig``, gives the root logger a stderr handler for the rest of the process.
Importing this module first imports Beam with a null handler on the root logger for the time of
the import; a root logger that has handlers already (the user's configuration) is left alone.
"""

from __future__ import annotations

import importlib
import logging


def _import_beam() -> None:
    root = logging.getLogger()
    guard = None if root.handlers else logging.NullHandler()
    if guard is not None:
        root.addHandler(guard)
    try:
        importlib.import_module("apache_beam")
    finally:
        if guard is not None:
            root.removeHandler(guard)


_import_beam()
