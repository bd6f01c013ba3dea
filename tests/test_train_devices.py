"""train --device names devices TensorFlow sees, or is refused before anything is written, and
mixed precision on CPUs only is trained with a warning: float16 is emulated there."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import keras
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from modeling.models import check_devices, strategy_and_policy
from tests.training_fixtures import single_label_dataset
from workflows.cli import app

ABSENT_GPU = f"/gpu:{len(tf.config.list_physical_devices('GPU'))}"
SEEN = ", ".join(
    f"{spec.device_type}:{spec.device_index}"
    for spec in map(tf.DeviceSpec.from_string, (d.name for d in tf.config.list_logical_devices()))
)
NO_SUCH_DEVICE = "TensorFlow sees no such device (devices: {seen})"
EMULATED = "mixed precision on CPU only"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("devices") / "ds"
    single_label_dataset(root, train=16, eval_clips=6)
    return root


@pytest.fixture
def restore_policy():
    previous = keras.mixed_precision.global_policy()
    yield
    keras.mixed_precision.set_global_policy(previous)


def _train_args(dataset: Path, out: Path, *devices: str) -> list[str]:
    args = ["train", str(dataset), "--out", str(out), "--steps", "1", "--task", "singlelabel"]
    args += ["--model-arg", "hidden=8"]
    for device in devices:
        args += ["--device", device]
    return args


@pytest.mark.parametrize(
    "name", ["/cpu:0", "CPU:0", "cpu", "/device:CPU:0", "/job:localhost/replica:0/task:0/cpu:0"]
)
def test_check_devices_takes_the_names_tensorflow_takes(name: str) -> None:
    check_devices([name])


@pytest.mark.parametrize("name", [ABSENT_GPU, "/cpu:1", "/job:worker/cpu:0", "banana"])
def test_check_devices_refuses_a_device_tensorflow_does_not_see(name: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_devices(["/cpu:0", name])
    assert str(refused.value) == f"--device {name}: {NO_SUCH_DEVICE.format(seen=SEEN)}"


def test_check_devices_refuses_a_device_named_twice() -> None:
    with pytest.raises(ValueError, match=r"^--device CPU:0: names /cpu:0 again; give each"):
        check_devices(["/cpu:0", "CPU:0"])


def test_train_refuses_a_gpu_it_does_not_have_before_writing(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, _train_args(dataset, out, ABSENT_GPU))
    assert result.exit_code == 2, result.output
    want = f"error: --device {ABSENT_GPU}: {NO_SUCH_DEVICE.format(seen=SEEN)}"
    assert result.output.splitlines() == [want]
    assert not out.exists()


def test_train_on_a_cpu_it_does_not_have_is_refused_not_hung(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "workflows", *_train_args(dataset, out, "/cpu:0", "/cpu:1")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    want = f"error: --device /cpu:1: {NO_SUCH_DEVICE.format(seen=SEEN)}"
    assert want in done.stderr.splitlines(), done.stderr
    assert not out.exists()


@pytest.mark.usefixtures("restore_policy")
def test_strategy_and_policy_refuses_a_device_it_does_not_have() -> None:
    with pytest.raises(ValueError, match=f"^--device {ABSENT_GPU}: TensorFlow sees no such"):
        strategy_and_policy(devices=[ABSENT_GPU])


@pytest.mark.usefixtures("restore_policy")
def test_mixed_precision_on_cpus_only_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="modeling.models"):
        strategy_and_policy(mixed_precision=False, devices=["/cpu:0"])
        assert not caplog.records
        strategy_and_policy(mixed_precision=True, devices=["/cpu:0"])
    assert [r.getMessage().startswith(EMULATED) for r in caplog.records] == [True]


def _gpus_visible(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Make ``tf.config.list_physical_devices("GPU")`` list ``count`` GPUs."""
    listed = tf.config.list_physical_devices
    fake = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(count)]

    def physical(kind: str | None = None) -> list:
        return fake if kind == "GPU" else listed(kind)

    monkeypatch.setattr(tf.config, "list_physical_devices", physical)


@pytest.mark.usefixtures("restore_policy")
def test_mixed_precision_without_a_gpu_warns(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _gpus_visible(monkeypatch, 0)
    with caplog.at_level(logging.WARNING, logger="modeling.models"):
        strategy_and_policy(mixed_precision=True)
    assert [r.getMessage().startswith(EMULATED) for r in caplog.records] == [True]


@pytest.mark.usefixtures("restore_policy")
def test_the_default_precision_follows_the_runs_devices(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a GPU visible, a run on CPUs only (--device /cpu:0) defaults to float32, not to
    emulated float16; a run on the GPU defaults to mixed precision."""
    _gpus_visible(monkeypatch, 1)
    with caplog.at_level(logging.WARNING, logger="modeling.models"):
        _, policy = strategy_and_policy(devices=["/cpu:0"])
        assert policy.name == "float32"
        _, policy = strategy_and_policy()
        assert policy.name == "mixed_float16"
    assert not caplog.records


@pytest.mark.usefixtures("restore_policy")
def test_train_with_mixed_precision_on_a_cpu_warns_and_trains(
    dataset: Path, tmp_path: Path
) -> None:
    args = [*_train_args(dataset, tmp_path / "run", "CPU:0"), "--mixed-precision"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert sum(line.startswith(f"warning: {EMULATED}") for line in lines) == 1, result.output
    assert "1 replica (MirroredStrategy: CPU:0), mixed_float16" in result.output
