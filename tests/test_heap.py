"""pipelines/heap.py: freed arrays are reused instead of faulted in again from the kernel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FAULTS_PROGRAM = """
import ctypes, json, resource, sys
import numpy as np
from pipelines.heap import retain_freed_memory

if sys.argv[1] == "tensorflow":
    # what TensorFlow's generator datasets set: trim at 128 kB
    ctypes.CDLL("libc.so.6").mallopt(-1, 128 << 10)

def faults_per_round():
    def one_round():
        if sys.argv[1] == "tensorflow":  # one 20 MB batch
            np.ones(20 << 20, np.uint8)
        else:  # what decoding one 10 s stereo clip allocates: frames, downmix, resampled, int16
            frames = np.ones((441000, 2), np.float32)
            mono = frames[:, 0] + frames[:, 1]
            resampled = np.ones(320000, np.float32) * mono[:320000]
            resampled.astype(np.int16)
    one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        one_round()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5

print(json.dumps([faults_per_round(), retain_freed_memory(), faults_per_round()]))
"""


@pytest.mark.parametrize("pattern", ["tensorflow", "decode"])
def test_retain_freed_memory_stops_page_faults_on_every_round(pattern: str) -> None:
    proc = subprocess.run([sys.executable, "-c", FAULTS_PROGRAM, pattern], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).parents[1])  # fmt: skip
    before, applied, after = json.loads(proc.stdout.strip().splitlines()[-1])
    assert applied is True
    # Fresh pages every round (how many faults depends on page size and fault-around: hundreds
    # with 4 kB pages, ~10 with transparent huge pages), then the freed memory reused.
    assert before >= 5 and after <= before / 10


RELEASE_PROGRAM = """
import json
import numpy as np
import pyarrow  # imported by release_freed_memory: loaded first, so RSS measures only the heap
from pipelines.heap import release_freed_memory, retain_freed_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

retain_freed_memory()
base = rss_mb()
arrays = [np.ones(1 << 20, np.uint8) for _ in range(200)]  # 200 MB served from the heap
del arrays
kept = rss_mb()
released = release_freed_memory()
print(json.dumps([base, kept, released, rss_mb()]))
"""


def test_release_freed_memory_returns_the_retained_heap_to_the_system() -> None:
    proc = subprocess.run([sys.executable, "-c", RELEASE_PROGRAM], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).parents[1])  # fmt: skip
    base, kept, released, after = json.loads(proc.stdout.strip().splitlines()[-1])
    assert released is True
    assert kept - base > 150  # freed, but kept for reuse
    assert after - base < 10
