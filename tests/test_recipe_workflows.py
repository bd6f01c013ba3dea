"""The dataset-recipe workflows (``workflows/recipes/*.yaml``): each resolves, and each runs end to
end in small mode on a tiny copy of its dataset in the published layout.

Small mode is only ``--set`` values (few steps, small batches, a narrow CNN, low sample rates), so
the files tested are the files shipped.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import shlex
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tests.http_media_server import MediaServer
from tests.media import write_media
from tests.recipe_layouts import make_fsd2019, make_urbansound8k, make_whale
from workflows.cli import app
from workflows.cli_run import builtin_workflows, workflow_file
from workflows.workflow_resolve import parse_overrides, resolve_workflow
from workflows.workflow_schema import load_workflow

ROOT = typer.main.get_command(app)
REPO = Path(__file__).resolve().parents[1]
RECIPES = ("audioset", "audioset_embeddings", "folder", "fsd2019", "urbansound8k", "whale")
CNN = ["filters=[4,4,8,8]"]
# Small-mode values of each workflow (beside root and work).
SMALL = {
    "whale": ["lrs=1e-3,3e-4", "steps=3", "batch_size=4", "workers=1", *CNN],
    "urbansound8k": ["sample_rate=8000", "n_fft=256", "hop_length=80", "steps=1", "batch_size=4",
                     "workers=1", *CNN],
    "fsd2019": ["sample_rate=8000", "clip_seconds=3", "n_fft=256", "hop_length=80", "steps=2",
                "batch_size=4", "workers=1", "folds=2", "mixups=0.2", "tta=2", *CNN],
    "folder": ["clip_seconds=1", "workers=1"],
    "audioset": ["sample_rate=16000", "clip_seconds=1", "workers=1", "embed_workers=1", "steps=3",
                 "batch_size=4"],
    "audioset_embeddings": ["steps=3", "batch_size=4"],
}  # fmt: skip


def run(name: str, root: Path, work: Path, *extra: str) -> str:
    """``audiomill run recipes/NAME`` in this process; fails the test on a non-zero exit."""
    sets = [f"root={root}", f"work={work}", *SMALL[name], *extra]
    args = ["run", f"recipes/{name}", *[w for s in sets for w in ("--set", s)]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output[-6000:]
    return result.output


def values(argv: tuple[str, ...], flag: str) -> list[str]:
    """The values given to ``flag`` in a command line, in order."""
    return [b for a, b in itertools.pairwise(argv) if a == flag]


def records(work: Path) -> dict[str, dict]:
    return json.loads((work / "workflow-state.json").read_text())["stages"]


def metrics(path: Path) -> dict:
    return json.loads((path / "metrics.json").read_text())


def test_every_recipe_is_built_in_by_name():
    names = {n.removeprefix("recipes/") for n in builtin_workflows() if n.startswith("recipes/")}
    assert names == set(RECIPES)
    for name in RECIPES:
        path = workflow_file(f"recipes/{name}")
        assert path == REPO / "workflows" / "recipes" / f"{name}.yaml"
        assert workflow_file(f"recipes/{name}.yaml") == path
    assert workflow_file("quickstart") == REPO / "workflows" / "quickstart.yaml"
    with pytest.raises(FileNotFoundError, match="recipes/whale"):
        workflow_file("recipes/nope")


def test_the_package_ships_the_recipe_files():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["workflows"]
    for path in (REPO / "workflows" / "recipes").glob("*.yaml"):
        rel = path.relative_to(REPO / "workflows").as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_resolves_with_defaults_and_small_mode(name: str, tmp_path: Path):
    workflow = load_workflow(workflow_file(f"recipes/{name}"), ROOT)
    assert workflow.name == name and workflow.description
    stages = workflow.stage_names()
    assert stages[-1] in ("report", "evaluate", "cv", "time-to-solution")
    assert {"verify", "index", "report"} <= set(stages)
    for overrides in ([], SMALL[name]):
        plan = resolve_workflow(workflow, parse_overrides(overrides), ROOT)
        assert plan.state == f"{name.replace('_', '-')}-out/workflow-state.json"
    small = resolve_workflow(
        workflow, parse_overrides([f"root={tmp_path}/data", f"work={tmp_path}/w", *SMALL[name]]),
        ROOT,
    )  # fmt: skip
    for stage in small.stages:
        for word in (*stage.argv, *map(str, stage.kwargs.values())):
            assert "${" not in word
        if "--steps" in stage.argv:
            assert values(stage.argv, "--steps") in (["1"], ["2"], ["3"])


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_dry_run_prints_each_stage_and_writes_nothing(name: str, tmp_path: Path):
    work = tmp_path / "w"
    result = CliRunner().invoke(
        app, ["run", f"recipes/{name}", "--dry-run", "--set", f"root={tmp_path}/data",
              "--set", f"work={work}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    workflow = load_workflow(workflow_file(f"recipes/{name}"), ROOT)
    for stage in workflow.stage_names():
        assert f"] {stage}: " in result.output
    assert "audiomill ingest" in result.output or "audiomill import" in result.output
    assert "dry run: nothing ran" in result.output
    assert not work.exists()


def header_runs(path: Path) -> list[list[str]]:
    """The ``audiomill run`` lines of a recipe's header comment, continuations joined, split."""
    header = itertools.takewhile(lambda line: line.startswith("#"), path.read_text().splitlines())
    lines = [line[1:].strip() for line in header]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.startswith("audiomill run")]


@pytest.mark.parametrize("name", RECIPES)
def test_header_hints_keep_root_files_under_root(name: str):
    """A variable the recipe reads from ``${root}/...`` is never hinted to a path outside root."""
    path = workflow_file(f"recipes/{name}")
    workflow = load_workflow(path, ROOT)
    under_root = {e.key for e in workflow.vars if str(e.node.value).startswith("${root}/")}
    runs = header_runs(path)
    assert runs, f"{path.name} shows no audiomill run line"
    for argv in runs:
        sets = parse_overrides(values(tuple(argv), "--set"))
        resolve_workflow(workflow, sets, ROOT)
        root = sets.get("root", "...")
        for key in under_root & set(sets):
            assert root == "..." or sets[key].startswith(f"{root}/"), (argv, key)


def test_whale_options_of_the_sweep(tmp_path: Path):
    plan = resolve_workflow(
        load_workflow(workflow_file("recipes/whale"), ROOT),
        parse_overrides([f"work={tmp_path}", "class_weights=true", "sampler=weighted"]), ROOT,
    )  # fmt: skip
    argv = next(s.argv for s in plan.stages if s.name == "sweep")
    assert argv[0] == "sweep" and "--class-weights" in argv
    assert values(argv, "--input") == ["waveforms"] and values(argv, "--model") == ["small_cnn"]
    assert values(argv, "--sampler") == ["weighted"]
    assert values(argv, "--lr") == ["1e-3,3e-4,1e-4"]
    assert "fmax=1000" in values(argv, "--model-arg")
    ingest = next(s.argv for s in plan.stages if s.name == "ingest")
    assert values(ingest, "--sample-rate") == ["2000"]
    assert not next(s for s in plan.stages if s.name == "spectrograms").enabled


def test_urbansound8k_holds_out_each_of_the_ten_folds(tmp_path: Path):
    plan = resolve_workflow(
        load_workflow(workflow_file("recipes/urbansound8k"), ROOT), {"work": str(tmp_path)}, ROOT
    )
    argv = next(s.argv for s in plan.stages if s.name == "cv")
    assert values(argv, "--fold-split") == [f"fold{k}" for k in range(1, 11)]
    assert values(argv, "--task") == ["singlelabel"]


@pytest.mark.slow
def test_whale_small_mode(tmp_path: Path):
    make_whale(tmp_path / "data", positives=5, negatives=11)
    work = tmp_path / "w"
    run("whale", tmp_path / "data", work, "export_png=true", "png_limit=3")
    sweep = json.loads((work / "sweep" / "sweep.json").read_text())
    assert sorted(r["lr"] for r in sweep) == [3e-4, 1e-3]
    for row in sweep:
        assert (work / "sweep" / row["setting"] / "all" / "summary.json").is_file()
    result = metrics(work / "evaluation")
    assert result["split"] == "eval" and result["num_clips"] == 3  # 1 of 5 calls, 2 of 11 not
    assert result["run"].endswith(f"{sweep[0]['setting']}/all")
    assert "mean_auc" in result["metrics"]
    assert records(work)["evaluate"]["summary"]["setting"] == sweep[0]["setting"]
    pngs = sorted(p.name for p in (work / "spectrograms" / "train").glob("*.png"))
    assert len(pngs) == 3
    labels = (work / "spectrograms" / "train" / "labels.csv").read_text().splitlines()
    assert labels[0] == "clip_id,file,labels" and len(labels) == 4
    assert (work / "report" / "index.html").is_file()
    before = {name: r["run_id"] for name, r in records(work).items()}
    assert len(before) == 8
    run("whale", tmp_path / "data", work, "export_png=true", "png_limit=3")
    assert {name: r["run_id"] for name, r in records(work).items()} == before


@pytest.mark.slow
def test_urbansound8k_small_mode_ten_folds(tmp_path: Path):
    make_urbansound8k(tmp_path / "UrbanSound8K", folds=10, per_fold=1)
    work = tmp_path / "w"
    run("urbansound8k", tmp_path / "UrbanSound8K", work)
    [row] = json.loads((work / "cv" / "sweep.json").read_text())
    assert row["folds"] == [f"fold{k}" for k in range(1, 11)]
    assert len(row["values"]) == 10 and 0.0 <= row["mean"] <= 1.0
    assert row["mean"] == pytest.approx(np.mean(row["values"]))
    tts = json.loads((work / "time_to_solution.json").read_text())
    assert tts["seconds"] == records(work)["cv"]["seconds"] > 0
    assert tts["runs"] == 10 and tts["devices"]["kind"]
    assert tts["best"]["mean"] == pytest.approx(row["mean"])
    assert (work / "report" / "index.html").is_file()


@pytest.mark.slow
def test_fsd2019_small_mode(tmp_path: Path):
    make_fsd2019(tmp_path / "fsd")
    work = tmp_path / "w"
    run("fsd2019", tmp_path / "fsd", work)
    noisy = json.loads((work / "runs" / "noisy" / "run.json").read_text())
    both = json.loads((work / "runs" / "noisy-curated" / "run.json").read_text())
    assert noisy["splits"] == ["noisy"] and noisy["eval_split"] == "curated"
    assert both["splits"] == ["noisy", "curated"] and both["mixup"] == 0.2
    result = metrics(work / "evaluation" / "noisy-on-curated")
    assert result["split"] == "curated" and result["num_clips"] == 3
    assert result["tta"] == 2 and result["metrics"]["lwlrap"] is not None
    [row] = json.loads((work / "cv" / "sweep.json").read_text())
    assert row["folds"] == ["fold1", "fold2"] and row["mixup"] == 0.2
    assert (work / "report" / "index.html").is_file()


@pytest.mark.slow
def test_audioset_embeddings_small_mode(tmp_path: Path, audioset_dir: Path):
    from tests.test_importers import frames, release_record, write_tfrecord

    root = tmp_path / "audioset_v1_embeddings"
    rng = np.random.default_rng(0)
    for split, n in (("bal_train", 8), ("eval", 4)):
        (root / split).mkdir(parents=True)
        records_ = [
            release_record(f"{split[:3]}{i:08d}", 10.0 * i, [i % 3, 3 + i % 2], frames(rng, 10))
            for i in range(n)
        ]
        write_tfrecord(root / split / f"{split}00.tfrecord", records_)
    shutil.copy(audioset_dir / "class_labels_indices.csv", root)
    work = tmp_path / "w"
    run("audioset_embeddings", root, work)
    result = metrics(work / "evaluation")
    assert result["num_clips"] == 4 and result["input"] == "embeddings"
    assert result["model"] == "multi_level_attention"
    assert result["metrics"]["num_classes_ap"] == 5
    assert records(work)["index"]["summary"]["clips"] == 12
    assert (work / "report" / "index.html").is_file()


@pytest.mark.slow
def test_folder_small_mode(tmp_path: Path):
    root = tmp_path / "audio"
    write_media(root / "dog" / "a.wav", 1.0, 16000, freq=300)
    write_media(root / "dog" / "park" / "b.flac", 0.6, 22050, freq=350)
    write_media(root / "bird" / "c.ogg", 1.2, 44100, channels=2, freq=2000)
    write_media(root / "bird" / "d.aiff", 0.8, 8000, freq=1500)
    work = tmp_path / "w"
    out = run("folder", root, work)
    assert "seeded" in out.lower()
    m = json.loads((work / "dataset" / "manifest.json").read_text())
    assert m["splits"]["train"]["num_clips"] == 4
    assert m["embeddings"]["vggish"]["train"]["shards"]
    assert records(work)["embed"]["summary"]["seeded"] is True
    assert (work / "report" / "index.html").is_file()


@pytest.mark.slow
def test_audioset_small_mode_over_http(tmp_path: Path, audioset_dir: Path):
    csv_dir, www = tmp_path / "csv", tmp_path / "www"
    mids = ["/m/09x0r", "/m/05zppz", "/m/02zsn"]
    header = ["# Segments csv created Sun Mar  5 10:54:31 2017",
              "# YTID, start_seconds, end_seconds, positive_labels"]  # fmt: skip
    train, evals = list(header), list(header)
    for i in range(6):
        ytid = f"clip-_{i:05d}"
        write_media(www / f"{ytid}.wav", 2.0, 16000, freq=200 + 150 * i, seed=i)
        (train if i < 4 else evals).append(f'{ytid}, 0.500, 1.500, "{mids[i % 3]}"')
    csv_dir.mkdir()
    (csv_dir / "balanced_train_segments.csv").write_text("\n".join(train) + "\n")
    (csv_dir / "eval_segments.csv").write_text("\n".join(evals) + "\n")
    shutil.copy(audioset_dir / "class_labels_indices.csv", csv_dir)
    work = tmp_path / "w"
    with MediaServer(www) as server:
        run("audioset", csv_dir, work, f"url_template={server.base_url}/{{ytid}}.wav")
    m = json.loads((work / "dataset" / "manifest.json").read_text())
    assert m["splits"]["balanced_train"]["num_clips"] == 4
    assert m["splits"]["eval"]["num_clips"] == 2
    assert set(m["embeddings"]["vggish"]) == {"balanced_train", "eval"}
    result = metrics(work / "evaluation")
    assert result["num_clips"] == 2 and result["model"] == "multi_level_attention"
