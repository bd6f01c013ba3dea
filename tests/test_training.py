"""Training: exact resume, learning on separable data, folds, samplers, run planning, CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from modeling.run_setup import parse_model_args, plan_run
from modeling.runs import RunConfig, RunDir, load_trained_model
from modeling.train_data import RowLabels, class_counts, fold_rows, make_sampler
from modeling.training import train
from schemas.classmap import ClassMap
from tests.dataset_builders import damage_parquet_audio, make_dataset, record_sizes
from tests.ingest_helpers import audiomill, cli_env
from tests.training_fixtures import embedding_config, separable_embedding, single_label_dataset
from workflows.cli import app

WAVE_ARGS = {
    "n_fft": 256,
    "hop_length": 64,
    "n_mels": 32,
    "fmax": 4000.0,
    "filters": [8, 8, 16, 16],
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train") / "ds"
    single_label_dataset(root)
    return root


def _classes(root: Path) -> ClassMap:
    return ClassMap.load(root / "classes.csv")


def _checkpoint_arrays(run: Path, step: int) -> dict[str, np.ndarray]:
    with np.load(RunDir(run).checkpoint_path(step)) as data:
        return {k: data[k] for k in data.files if k != "meta"}


def test_resumed_run_equals_uninterrupted_run(dataset: Path, tmp_path: Path) -> None:
    def config(steps: int) -> RunConfig:
        return embedding_config(dataset, steps=steps, eval_every=3, mixup=0.4)

    whole = train(config(9), tmp_path / "whole", classes=_classes(dataset))
    first = train(config(3), tmp_path / "split", classes=_classes(dataset))
    assert first.step == 3
    resumed = train(config(9), tmp_path / "split", resume=True)
    assert resumed.resumed_from == 3 and resumed.step == 9
    a, b = _checkpoint_arrays(tmp_path / "whole", 9), _checkpoint_arrays(tmp_path / "split", 9)
    assert a.keys() == b.keys()
    assert any(k.startswith("g") for k in a), "dropout RNG state is checkpointed"
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)
    assert [h["loss"] for h in whole.history] == pytest.approx(
        [h["loss"] for h in resumed.history], rel=1e-6
    )
    seconds = [h["seconds"] for h in resumed.history]  # the run's time goes on from before
    assert seconds == sorted(seconds) and seconds[1] > seconds[0]


def test_resume_refuses_changed_settings_and_new_run_refuses_existing(
    dataset: Path, tmp_path: Path
) -> None:
    train(
        embedding_config(dataset, steps=2, eval_every=2), tmp_path / "r", classes=_classes(dataset)
    )
    with pytest.raises(ValueError, match="learning_rate"):
        train(embedding_config(dataset, steps=4, learning_rate=0.5), tmp_path / "r", resume=True)
    with pytest.raises(FileExistsError, match="--restart"):
        train(embedding_config(dataset, steps=2), tmp_path / "r", classes=_classes(dataset))
    restarted = train(
        embedding_config(dataset, steps=2, learning_rate=0.5),
        tmp_path / "r",
        restart=True,
        classes=_classes(dataset),
    )
    assert restarted.previous == tmp_path / "r.previous" and restarted.resumed_from == 0
    assert RunDir(tmp_path / "r").load_config().learning_rate == 0.5
    assert RunDir(tmp_path / "r.previous").load_config().learning_rate == 1e-3
    fresh = train(
        embedding_config(dataset, steps=2), tmp_path / "new", resume=True, classes=_classes(dataset)
    )
    assert fresh.resumed_from == 0 and fresh.step == 2


def test_attention_model_learns_separable_single_label_task(dataset: Path, tmp_path: Path) -> None:
    config = embedding_config(
        dataset, task="singlelabel", steps=120, eval_every=40, sampler="shuffled"
    )
    result = train(config, tmp_path / "run", classes=_classes(dataset))
    assert result.best_value >= 0.95
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    model = load_trained_model(tmp_path / "run")
    assert model.output_shape == (None, 3)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["metric"] == "accuracy" and summary["best_step"] == result.best_step
    assert list((tmp_path / "run" / "logs").iterdir()), "TensorBoard events written"


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [("small_cnn", WAVE_ARGS), ("cnn14", {"width": 4, "blocks": 2, **WAVE_ARGS, "filters": None})],
)
def test_waveform_models_loss_falls(
    dataset: Path, tmp_path: Path, model: str, kwargs: dict
) -> None:
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    config, classes = plan_run(
        str(dataset),
        input="waveforms",
        model=model,
        steps=40,
        eval_every=20,
        batch_size=12,
        learning_rate=3e-3,
        sampler="shuffled",
        model_args=kwargs,
    )
    result = train(config, tmp_path / model, classes=classes)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert np.isfinite(result.last_metrics["mAP"])


def test_fold_rows_partition_every_row() -> None:
    held = [fold_rows(23, 5, k, seed=3)[1] for k in range(5)]
    assert sorted(np.concatenate(held).tolist()) == list(range(23))
    train_rows, held0 = fold_rows(23, 5, 0, seed=3)
    assert not set(train_rows) & set(held0)
    assert np.array_equal(held0, fold_rows(23, 5, 0, seed=3)[1])
    assert not np.array_equal(held0, fold_rows(23, 5, 0, seed=4)[1])
    with pytest.raises(ValueError, match="folds"):
        fold_rows(3, 5, 0, 0)


def _labels() -> RowLabels:
    # rows 0-5: class 0; rows 6-7: class 1; rows 8-9: no label
    return RowLabels(
        num_rows=10,
        rows=np.array([0, 1, 2, 3, 4, 5, 6, 7]),
        classes=np.array([0, 0, 0, 0, 0, 0, 1, 1]),
        clip_ids=[f"c{i}" for i in range(10)],
    )


def test_balanced_sampler_gives_unlabelled_clips_their_own_queue() -> None:
    rows = np.arange(10)
    drawn = make_sampler("balanced", rows, _labels(), seed=0).take(300)
    groups = np.bincount(np.select([drawn < 6, drawn < 8], [0, 1], 2), minlength=3)
    assert np.all(np.abs(groups - 100) <= 1)


def test_subset_samplers_stay_in_their_rows() -> None:
    rows = np.array([1, 3, 6, 8, 9])
    for kind in ("shuffled", "weighted", "balanced"):
        drawn = make_sampler(kind, rows, _labels(), seed=1).take(200)
        assert set(drawn.tolist()) <= set(rows.tolist()), kind
    weighted = make_sampler("weighted", rows, _labels(), seed=1).take(4000)
    share = np.isin(weighted, [6]).mean()
    # among the rows: class 0 has 2 clips (1/2 each), class 1 one (1), unlabelled get 1/2
    assert share == pytest.approx(1 / 3, abs=0.03)
    assert class_counts(rows, _labels(), 2).tolist() == [2, 1]


def test_plan_run_resolves_defaults_and_refuses_bad_options(dataset: Path) -> None:
    config, classes = plan_run(str(dataset), input="embeddings", batch_size=8, epochs=2)
    assert config.model == "multi_level_attention" and config.eval_split == "eval"
    assert config.steps == 12 and config.eval_every == 2
    assert config.model_kwargs["num_frames"] == 10 and len(classes) == 3
    folded, _ = plan_run(str(dataset), input="waveforms", folds=4, fold=4, steps=5)
    assert folded.fold == 3 and folded.eval_split is None
    assert folded.model_kwargs["clip_samples"] == 800
    with pytest.raises(ValueError, match=r"the dataset has no split 'nope' \(it has eval, train\)"):
        plan_run(str(dataset), input="embeddings", splits=["nope"])
    with pytest.raises(ValueError, match="no model"):
        plan_run(str(dataset), input="embeddings", model="cnn14")
    with pytest.raises(ValueError, match="--fold must be in"):
        plan_run(str(dataset), input="embeddings", folds=3, fold=0)
    with pytest.raises(ValueError, match="not both"):
        plan_run(str(dataset), input="embeddings", steps=3, epochs=1)
    assert parse_model_args(["width=16", "name=x", "f=[1,2]"]) == {
        "width": 16,
        "name": "x",
        "f": [1, 2],
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_model_args(["width"])


def test_train_and_sweep_cli(dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    args = ["train", str(dataset), "--out", str(run), "--steps", "4", "--eval-every", "2"]
    args += ["--batch-size", "8", "--model-arg", "hidden=16", "--task", "singlelabel"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best accuracy" in result.output and "resumed" not in result.output
    device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU"
    assert re.search(rf"devices +│ {device}, float32 ", result.output), result.output
    assert json.loads((run / "summary.json").read_text())["devices"] == f"{device}, float32"
    history = RunDir(run).history()
    assert [h["step"] for h in history] == [2, 4]
    resumed = runner.invoke(app, [*args[:5], "6", *args[6:], "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from 4" in resumed.output
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output
    both = runner.invoke(app, [*args, "--resume", "--restart"])
    assert both.exit_code == 2 and "do not go together" in both.output
    bad = runner.invoke(app, ["train", str(dataset), "--out", str(tmp_path / "x"), "--input", "x"])
    assert bad.exit_code == 2 and "--input must be one of" in bad.output

    sweep = ["sweep", str(dataset), "--out", str(tmp_path / "sweep"), "--lr", "1e-3,1e-2"]
    sweep += ["--fold-split", "train", "--fold-split", "eval", "--steps", "3", "--batch-size", "8"]
    sweep += ["--model-arg", "hidden=8"]
    result = runner.invoke(app, sweep)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert {r["setting"] for r in rows} == {"lr0.001-mixup0", "lr0.01-mixup0"}
    assert all(len(r["values"]) == 2 for r in rows)
    assert (tmp_path / "sweep" / "lr0.01-mixup0" / "eval" / "best.weights.h5").is_file()
    rerun = runner.invoke(app, sweep)
    assert rerun.exit_code == 0 and "steps" not in rerun.output.split("sweep:")[0]


def test_train_resume_takes_the_runs_settings_and_extends_it_by_steps(
    dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    options = ["--batch-size", "8", "--task", "singlelabel", "--mixup", "0.2"]
    options += ["--model-arg", "hidden=8"]
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, ["train", str(dataset), *args])
        assert result.exit_code == 0, result.output
        return result.output

    invoke("--out", str(run), "--steps", "8", *options)
    assert RunDir(run).load_config().eval_every == 1, "derived from --steps 8"
    assert "12 (resumed from 8)" in invoke("--out", str(run), "--steps", "12", *options, "--resume")
    config = RunDir(run).load_config()
    assert (config.steps, config.eval_every) == (12, 1)
    RunDir(run).checkpoint_path(12).unlink()  # as if stopped after step 11
    assert "12 (resumed from 11)" in invoke("--out", str(run), "--resume")
    assert RunDir(run).trained_steps() == 12
    fewer = runner.invoke(
        app, ["train", str(dataset), "--out", str(run), "--steps", "10", "--resume"]
    )
    assert fewer.exit_code == 2 and "Traceback" not in fewer.output
    assert (
        f"error: --resume continues run {run}, which has trained 12 steps, but --steps is 10: "
        "give at least 12 steps, or leave --steps out"
    ) in fewer.output.splitlines()
    invoke("--out", str(tmp_path / "whole"), "--steps", "12", "--eval-every", "1", *options)
    resumed, whole = _checkpoint_arrays(run, 12), _checkpoint_arrays(tmp_path / "whole", 12)
    assert resumed.keys() == whole.keys()
    for key in resumed:
        np.testing.assert_allclose(resumed[key], whole[key], rtol=1e-6, atol=1e-7, err_msg=key)

    changed = ["--lr", "0.5", "--batch-size", "8", "--model-arg", "hidden=9", "--resume"]
    result = runner.invoke(app, ["train", str(dataset), "--out", str(run), *changed])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        f"error: --resume continues run {run} with its own settings, but the command changes "
        "--lr 0.001 -> 0.5, --model-arg hidden: 8 -> 9: leave them out to continue the run, or "
        "start it over with --restart"
    ) in result.output.splitlines()


def test_train_names_a_shard_that_fails_mid_training_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    single_label_dataset(root, formats=("parquet",))
    shard = root / "waveforms/train/shard-00001.parquet"
    damage_parquet_audio(shard, 5)
    record_sizes(root)
    args = ["train", str(root), "--out", str(tmp_path / "run"), "--input", "waveforms"]
    args += ["--model", "small_cnn", "--steps", "4", "--eval-every", "2", "--batch-size", "16"]
    args += ["--sampler", "shuffled"]
    for key, value in WAVE_ARGS.items():
        args += ["--model-arg", f"{key}={json.dumps(value)}"]
    env = cli_env()
    del env["TF_CPP_MIN_LOG_LEVEL"]  # TensorFlow's native warnings shown, as for a user
    done = audiomill(*args, env=env, check=False)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1] == (
        f"error: {shard}: cannot be read (the audio of row 5 cannot be decoded "
        "(File contains data in an unimplemented format.))"
    ), done.stderr
    assert len(lines) <= 2, done.stderr  # the bar as it stood; no native log, no traceback


def test_train_refuses_a_shard_cut_short_before_training_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    single_label_dataset(root)
    shard = root / "waveforms/train/shard-00001.h5"
    size = shard.stat().st_size
    with open(shard, "r+b") as cut:
        cut.truncate(size // 2)
    args = ["train", str(root), "--out", str(tmp_path / "run"), "--input", "waveforms"]
    args += ["--model", "small_cnn", "--steps", "4", "--batch-size", "16"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"error: {shard} is {size // 2:,} bytes, not {size:,}: the manifest recorded these shard "
        "files when they were committed, so they were removed, cut short or replaced since; "
        "restore them from a copy (`audiomill dataset verify` checks every shard)"
    ]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_train_and_evaluate_raise_no_keras_warnings(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    splits = {"train": [[i % 3] for i in range(12)], "eval": [[i % 3] for i in range(5)]}
    make_dataset(
        root,
        splits,
        num_classes=3,
        embedding_formats=("hdf5",),
        embedding_of=lambda clip: separable_embedding(clip)[:1],  # one frame: 1 s clips
    )
    runner = CliRunner()
    run = str(tmp_path / "run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for args in (
            ["train", str(root), "--out", run, "--steps", "4", "--eval-every", "2"],
            ["evaluate", run, str(root), "--split", "eval", "--out", str(tmp_path / "ev")],
        ):
            result = runner.invoke(app, [*args, "--batch-size", "4"])
            assert result.exit_code == 0, result.output
    user_warnings = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert user_warnings == []


MIRRORED_SCRIPT = """
import sys
from pathlib import Path

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
from modeling.runs import load_trained_model
from modeling.training import train
from schemas.classmap import ClassMap
from tests.training_fixtures import embedding_config

root = Path(sys.argv[1])
config = embedding_config(root, steps=4, eval_every=2, mixed_precision=True, mixup=0.2)
result = train(config, sys.argv[2], classes=ClassMap.load(root / "classes.csv"),
               devices=["/cpu:0", "/cpu:1"])
assert keras.mixed_precision.global_policy().name == "mixed_float16"
assert result.step == 4 and result.last_metrics["num_samples"] == 24, result.last_metrics
want = "2 replicas (MirroredStrategy: CPU:0, CPU:1), mixed_float16"
assert result.devices == want, result.devices
print("replicated", result.history[-1]["loss"])
"""


def test_mirrored_strategy_and_mixed_precision_on_two_cpu_devices(
    dataset: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(dataset), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replicated" in done.stdout
    assert (tmp_path / "run" / "best.weights.h5").is_file()


def test_train_resume_of_a_finished_run_rewrites_nothing(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", str(dataset), "--out", str(run), "--task", "singlelabel", "--steps", "4"]
    args += ["--eval-every", "2", "--batch-size", "8", "--model-arg", "hidden=8"]
    runner = CliRunner()
    assert runner.invoke(app, args).exit_code == 0
    files = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    for resume in (["--out", str(run), "--resume"], [*args[2:], "--resume"]):
        result = runner.invoke(app, ["train", str(dataset), *resume])
        assert result.exit_code == 0, result.output
        assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == files
        assert "already trained 4 steps; nothing to do" in result.output
        assert "last accuracy" in result.output and "resumed from" not in result.output
