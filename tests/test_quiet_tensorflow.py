"""features/quiet_tensorflow.py: native INFO lines dropped from stderr, everything else kept."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from features.quiet_tensorflow import NATIVE_INFO_LINE

REPO = Path(__file__).resolve().parents[1]

NOISE = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1796316355.687613    4178 port.cc:153] oneDNN custom operations are on.\n"
    b"2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] "
    b"Could not find cuda drivers on your machine, GPU will not be used.\n"
)


def run(
    program: str, cwd: Path = REPO, start_new_session: bool = False, **env: str
) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environ.update(PYTHONPATH=os.pathsep.join([str(REPO), str(cwd)]), **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        capture_output=True,
        cwd=cwd,
        env=environ,
        timeout=120,
        start_new_session=start_new_session,
    )


def native_info_lines(stderr: bytes) -> list[bytes]:
    return [line for line in stderr.splitlines(keepends=True) if NATIVE_INFO_LINE.match(line)]


def test_the_pattern_matches_info_lines_only():
    assert len(native_info_lines(NOISE)) == 3
    kept = (
        b"E0000 00:00:1796316359.320310    4178 cuda_platform.cc:52] failed call to cuInit\n"
        b"W0000 00:00:1.5    4178 x.cc:1] a warning\n"
        b"2025-09-17 14:44:05.176998: E external/cuda_fft.cc:467] Unable to register\n"
        b"Illegal instruction: I0000 00:00:1.0 1 x.cc:1] quoted, not at the start\n"
        b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    )
    assert native_info_lines(kept) == []


def test_the_block_drops_matching_lines_and_passes_the_rest_in_order():
    done = run(
        f"""
        import os, subprocess, sys
        from features.quiet_tensorflow import NATIVE_INFO_LINE, stderr_lines_dropped

        os.write(2, b"before\\n")
        with stderr_lines_dropped(NATIVE_INFO_LINE):
            os.write(2, {NOISE!r})
            os.write(2, b"E0000 00:00:1.2    7 cuda_platform.cc:52] failed call to cuInit\\n")
            print("from python", file=sys.stderr)
            subprocess.run([sys.executable, "-c", "import os; os.write(2, "
                            "b'I0000 00:00:1.0  7 child.cc:1] child info\\\\nchild error\\\\n')"])
        os.write(2, b"after\\n")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().splitlines() == [
        "before",
        "E0000 00:00:1.2    7 cuda_platform.cc:52] failed call to cuInit",
        "from python",
        "child error",
        "after",
    ]


def test_the_pattern_keeps_its_flags_in_the_filter():
    done = run(
        """
        import os, re
        from features.quiet_tensorflow import stderr_lines_dropped

        with stderr_lines_dropped(re.compile(rb"noise", re.IGNORECASE)):
            os.write(2, b"NOISE here\\nsignal\\n")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().splitlines() == ["signal"]


def test_what_came_before_a_crash_in_the_block_still_arrives():
    done = run(
        """
        import os
        from features.quiet_tensorflow import NATIVE_INFO_LINE, stderr_lines_dropped

        with stderr_lines_dropped(NATIVE_INFO_LINE):
            os.write(2, b"I0000 00:00:1.0  7 cpu.cc:1] info\\nF0000 this CPU lacks AVX\\n")
            os.abort()
        """
    )
    assert done.returncode == -6
    assert done.stderr.decode().splitlines() == ["F0000 this CPU lacks AVX"]


def test_ctrl_c_leaves_the_filter_passing_lines_until_its_writers_are_done():
    done = run(
        """
        import os, signal, time
        from features.quiet_tensorflow import NATIVE_INFO_LINE, stderr_lines_dropped

        signal.signal(signal.SIGINT, lambda *_: None)  # this process goes on after Ctrl-C
        with stderr_lines_dropped(NATIVE_INFO_LINE):
            time.sleep(1.0)  # the filter process is running
            os.killpg(0, signal.SIGINT)  # as a terminal's Ctrl-C does, to the whole group
            time.sleep(0.5)
            os.write(2, b"I0000 00:00:1.0  7 cpu.cc:1] info\\nwritten after Ctrl-C\\n")
        """,
        start_new_session=True,
    )
    assert done.returncode == 0
    assert done.stderr.decode().splitlines() == ["written after Ctrl-C"]


def test_quiet_import_filters_that_import_only_and_leaves_no_trace(tmp_path: Path):
    for name in ("noisyprobe", "otherprobe"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"import os\nos.write(2, {NOISE!r})\nos.write(2, b'{name} says something real\\n')\n"
        )
    done = run(
        """
        import sys
        from features.quiet_tensorflow import quiet_import, _QuietFinder

        quiet_import("noisyprobe")
        quiet_import("noisyprobe")  # once is enough
        print(sum(isinstance(f, _QuietFinder) for f in sys.meta_path))
        import noisyprobe
        print(type(noisyprobe.__loader__).__name__, type(noisyprobe.__spec__.loader).__name__)
        print(any(isinstance(f, _QuietFinder) for f in sys.meta_path))
        import otherprobe
        """,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ["1", "SourceFileLoader", "SourceFileLoader", "False"]
    stderr = done.stderr.decode()
    assert "noisyprobe says something real" in stderr
    assert "otherprobe says something real" in stderr
    assert len(native_info_lines(done.stderr)) == 3  # all from otherprobe, imported plainly


@pytest.mark.slow
def test_tensorflow_imports_without_its_native_info_lines():
    plain = run("import keras")
    assert plain.returncode == 0, plain.stderr
    # The premise: the pinned TensorFlow prints them (if a release stops, this module can go).
    assert native_info_lines(plain.stderr), plain.stderr
    quiet = run(
        """
        import os
        from features.quiet_tensorflow import quiet_tensorflow_import

        quiet_tensorflow_import()
        import keras
        import tensorflow as tf

        print(os.environ["TF_CPP_MIN_LOG_LEVEL"], float(tf.reduce_sum(tf.ones(3))))
        """
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.decode().split() == ["1", "3.0"]
    assert native_info_lines(quiet.stderr) == []


CUINIT = b"E0000 00:00:1796352785.25  4844 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
FAKE_TENSORFLOW = f"""
import os, types

_platform = []


def list_physical_devices(kind=None):
    if not _platform:  # like TensorFlow: CUDA is started, and its failure logged, once
        _platform.append(1)
        os.write(2, {CUINIT!r} + b"E0000 00:00:1.0  7 other.cc:1] a real error\\n")
    return []


config = types.SimpleNamespace(list_physical_devices=list_physical_devices)
"""


@pytest.mark.parametrize("driver", [False, True])
def test_the_cuinit_failure_is_dropped_only_without_a_driver(tmp_path: Path, driver: bool):
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(FAKE_TENSORFLOW)
    (tmp_path / "nvidia-version").touch()
    marker = tmp_path / ("nvidia-version" if driver else "absent")
    done = run(
        f"""
        import features.quiet_tensorflow as quiet

        quiet.NVIDIA_DRIVER_FILES = ({str(marker)!r},)
        quiet.quiet_tensorflow_import()
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")
        """,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    real = [b"E0000 00:00:1.0  7 other.cc:1] a real error\n"]
    assert done.stderr.splitlines(keepends=True) == ([CUINIT] if driver else []) + real


@pytest.mark.slow
def test_tensorflow_finds_no_gpu_without_the_cuinit_line():
    # As on a host without a driver wherever it runs: no GPU visible, no driver files found.
    look = "import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))"
    plain = run(look, CUDA_VISIBLE_DEVICES="")
    assert plain.returncode == 0, plain.stderr
    assert b"failed call to cuInit" in plain.stderr  # the premise, with TensorFlow's CUDA build
    quiet = run("import features.quiet_tensorflow as quiet\n"
                "quiet.NVIDIA_DRIVER_FILES = ('/nonexistent/nvidia/version',)\n"
                f"quiet.quiet_tensorflow_import()\n{look}", CUDA_VISIBLE_DEVICES="")  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.decode().split() == ["[]"]
    assert b"cuInit" not in quiet.stderr and native_info_lines(quiet.stderr) == []
