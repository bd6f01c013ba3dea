"""Beam's state sampler in ingest's processes samples often enough that a bundle's end, which
joins the sampler thread, does not wait for a sleep of up to 200 ms."""

from __future__ import annotations

import subprocess
import sys

import pytest
from apache_beam.runners.worker import statesampler
from apache_beam.utils.counters import CounterFactory

from pipelines.beam_ingest import STATE_SAMPLING_MS, sample_states_often


def test_samplers_made_afterwards_sample_every_state_sampling_ms() -> None:
    code = (
        "from apache_beam.runners.worker import statesampler\n"
        "from apache_beam.utils.counters import CounterFactory\n"
        "from pipelines.beam_ingest import sample_states_often\n"
        "before = statesampler.StateSampler('a', CounterFactory()).sampling_period_ms\n"
        "sample_states_often()\n"
        "sample_states_often()\n"
        "print(before, statesampler.StateSampler('b', CounterFactory()).sampling_period_ms)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [
        str(statesampler.DEFAULT_SAMPLING_PERIOD_MS),
        str(STATE_SAMPLING_MS),
    ]
    assert STATE_SAMPLING_MS < statesampler.DEFAULT_SAMPLING_PERIOD_MS


def test_a_default_this_beam_does_not_have_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statesampler.StateSampler.__init__, "__defaults__", (150,))
    sample_states_often()
    assert statesampler.StateSampler("c", CounterFactory()).sampling_period_ms == 150
