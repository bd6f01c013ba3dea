"""pipelines/beam_import.py: Beam's import prints nothing and configures no logging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(program: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, cwd=REPO
    )


def test_importing_the_ingest_pipeline_prints_nothing_and_leaves_the_root_logger_bare():
    done = run(
        "import logging, pipelines.beam_ingest\n"
        "print(len(logging.getLogger().handlers), 'apache_beam' in __import__('sys').modules)"
    )
    assert done.stdout.split() == ["0", "True"]
    assert done.stderr == ""


def test_a_configured_root_logger_is_left_as_it_is():
    done = run(
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, format='%(levelname)s %(message)s')\n"
        "handlers = list(logging.getLogger().handlers)\n"
        "import pipelines.beam_ingest\n"
        "print(logging.getLogger().handlers == handlers)"
    )
    assert done.stdout.splitlines()[-1] == "True"
    assert "WARNING apitools not found" in done.stdout  # the user's handler still gets it
