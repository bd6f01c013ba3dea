"""VGGish: Keras model vs an independent NumPy forward pass of TF-slim checkpoints, and PCA."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from features.vggish_checkpoint import (
    CheckpointError,
    checkpoint_sha256,
    load_vggish_checkpoint,
    resolve_checkpoint,
)
from features.vggish_model import VGGishEmbedder, build_vggish
from features.vggish_postprocess import VGGishPostprocessor, pca_sha256
from tests.vggish_fixtures import (
    CONVS,
    FCS,
    numpy_vggish,
    random_weights,
    reference_postprocess,
    slim_shapes,
    write_slim_checkpoint,
)


@pytest.fixture(scope="module")
def pca(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    eigen = rng.normal(0.0, 0.01, (128, 128))  # raw embeddings have std ~9
    means = rng.normal(0.0, 2.0, (128, 1))
    path = tmp_path_factory.mktemp("pca") / "vggish_pca_params.npz"
    np.savez(path, pca_eigen_vectors=eigen, pca_means=means)
    return path, eigen, means.ravel()


@pytest.fixture(scope="module")
def model():
    return build_vggish()


def test_architecture(model):
    assert model.count_params() == 72_141_184
    assert model.output_shape == (None, 128)
    assert model.get_layer("pool4").output.shape == (None, 6, 4, 512)
    assert model.get_layer("flatten").output.shape == (None, 12288)


def test_embedder_matches_numpy_reference(tmp_path, pca):
    # One test, so that parallel workers do not each build a 72M-parameter checkpoint and model.
    weights = random_weights(seed=7)
    checkpoint = write_slim_checkpoint(
        tmp_path / "vggish_model.ckpt", {**weights, "vggish/extra/weights": np.ones((2, 2))}
    )
    embedder = VGGishEmbedder(checkpoint, pca[0], batch_size=3)
    examples = np.random.default_rng(3).normal(0.0, 2.0, (5, 96, 64)).astype(np.float32)
    raw, quantized = embedder.embed(examples)  # batches of 3 + 2
    expected = numpy_vggish(weights, examples[:2])
    assert np.abs(expected).max() > 0.5  # activations are O(1), not vanishing
    np.testing.assert_allclose(raw[:2], expected, rtol=1e-4, atol=1e-4)
    assert (raw < 0).any()  # fc2 is linear: no ReLU
    np.testing.assert_allclose(raw, embedder.model.predict(examples, verbose=0), rtol=1e-5)
    np.testing.assert_array_equal(quantized, embedder.postprocessor.postprocess(raw))
    assert quantized.dtype == np.uint8 and quantized.shape == (5, 128)
    assert ((quantized > 0) & (quantized < 255)).mean() > 0.5  # mostly inside the clip range

    raw, quantized = embedder.embed(np.zeros((0, 96, 64), np.float32))
    assert raw.shape == (0, 128) and quantized.shape == (0, 128)
    with pytest.raises(ValueError, match=r"\(n, 96, 64\)"):
        embedder.raw(np.zeros((2, 64, 96)))

    report = embedder.checkpoint_report
    assert report["ignored"] == ["global_step", "vggish/extra/weights"]
    assert len(report["loaded"]) == 18 and report["parameters"] == 72_141_184
    index, data = (
        tmp_path / "vggish_model.ckpt.index",
        tmp_path / "vggish_model.ckpt.data-00000-of-00001",
    )
    digest = hashlib.sha256(index.read_bytes() + data.read_bytes()).hexdigest()
    assert report["sha256"] == checkpoint_sha256(checkpoint) == digest
    assert resolve_checkpoint(index) == resolve_checkpoint(data) == (checkpoint, [index, data])
    assert embedder.provenance["pca_sha256"] == hashlib.sha256(pca[0].read_bytes()).hexdigest()


def test_v1_single_file_and_directory(tmp_path, model):
    # A distinct constant per variable is enough to check that each lands in its layer.
    weights = {
        name: np.full(shape, i + 1, np.float32)
        for i, (name, shape) in enumerate(slim_shapes().items())
    }
    path = write_slim_checkpoint(tmp_path / "vggish_model.ckpt", weights, v1=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "vggish_model.ckpt"]
    assert resolve_checkpoint(tmp_path) == (path, [Path(path)])
    assert checkpoint_sha256(tmp_path) == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    load_vggish_checkpoint(model, tmp_path)
    for scope in [scope for scope, _, _ in CONVS + FCS]:
        kernel, bias = model.get_layer(scope.split("/")[-1]).get_weights()
        np.testing.assert_array_equal(kernel, weights[f"vggish/{scope}/weights"])
        np.testing.assert_array_equal(bias, weights[f"vggish/{scope}/biases"])


def test_the_embed_command_resolves_and_hashes_checkpoints_without_tensorflow(tmp_path):
    weights = {name: np.zeros(shape, np.float32) for name, shape in slim_shapes().items()}
    prefix = write_slim_checkpoint(tmp_path / "vggish_model.ckpt", weights)
    # What `audiomill embed` runs in its own process; only its Dask workers run the model.
    program = (
        "import sys\n"
        "import workflows.cli_features\n"
        "from features.embed import embed_dataset\n"
        "from features.vggish_checkpoint import CheckpointError, checkpoint_sha256\n"
        f"print(checkpoint_sha256({prefix!r}))\n"
        "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[1])  # fmt: skip
    digest, loaded = done.stdout.split("\n")[:2]
    assert digest == checkpoint_sha256(prefix) and loaded == "[]"


def test_bad_checkpoint_names_every_variable_and_leaves_model(tmp_path, model):
    arrays = {name: np.zeros(shape, np.float32) for name, shape in slim_shapes().items()}
    del arrays["vggish/fc2/biases"]
    arrays["vggish/conv3/conv3_2/weights"] = np.zeros((3, 3, 256, 128), np.float32)
    arrays["vggish/conv1/biases"] = np.zeros(64, np.float64)
    prefix = write_slim_checkpoint(tmp_path / "bad.ckpt", arrays)
    before = model.get_layer("fc1_1").get_weights()[0][:4, :4].copy()
    with pytest.raises(CheckpointError) as err:
        load_vggish_checkpoint(model, prefix)
    message = str(err.value)
    assert prefix in message and "3 of 18 variables" in message
    assert "vggish/fc2/biases: missing (expected shape [128])" in message
    mis_shaped = (
        "vggish/conv3/conv3_2/weights: shape [3, 3, 256, 128] (expected shape [3, 3, 256, 256])"
    )
    assert mis_shaped in message
    assert "vggish/conv1/biases: dtype float64 (expected float32)" in message
    assert "vggish/conv2" not in message
    np.testing.assert_array_equal(model.get_layer("fc1_1").get_weights()[0][:4, :4], before)


def test_resolve_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*download"):
        resolve_checkpoint(tmp_path / "vggish_model.ckpt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_checkpoint(tmp_path)
    (tmp_path / "a.ckpt.index").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"no a\.ckpt\.data"):
        resolve_checkpoint(tmp_path / "a.ckpt")
    (tmp_path / "b.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="several checkpoints"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_vggish_checkpoint(None, tmp_path / "b.ckpt")


def test_postprocess_matches_definition(pca):
    path, eigen, means = pca
    emb = np.random.default_rng(1).normal(0.0, 9.0, (6, 128)).astype(np.float32)
    post = VGGishPostprocessor(path)
    np.testing.assert_array_equal(post.postprocess(emb), reference_postprocess(emb, eigen, means))
    assert post.sha256 == pca_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_postprocess_truncates_and_clips(tmp_path):
    path = tmp_path / "identity.npz"
    np.savez(path, pca_eigen_vectors=np.eye(128), pca_means=np.zeros(128))  # (128,) means
    # (x + 2) * 63.75 = 10.9, 0.6 and 254.99: truncation gives 10, 0, 254; rounding 11, 1, 255.
    values = np.array([10.9, 0.6, 254.99]) / 63.75 - 2.0
    emb = np.zeros((1, 128))
    emb[0, :3] = values
    emb[0, 3:5] = [7.0, -7.0]
    out = VGGishPostprocessor(path).postprocess(emb)
    assert out[0, :5].tolist() == [10, 0, 254, 255, 0]
    assert (out[0, 5:] == 127).all()  # 2 * 63.75 = 127.5


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "NumPy cannot read it as an .npz archive"),
        (b"index,mid\n0,/m/0\n", "NumPy cannot read it as an .npz archive"),
        (b"", "NumPy cannot read it as an .npz archive"),
        (None, r"one array \(\.npy\)"),
    ],
)
def test_a_file_that_is_not_a_pca_npz_is_named(tmp_path, content, reason):
    path = tmp_path / "params.npz"
    if content is None:
        with open(path, "wb") as fh:
            np.save(fh, np.eye(128))
    else:
        path.write_bytes(content)
    with pytest.raises(
        ValueError, match=rf"{path} is not a VGGish PCA parameters \.npz .*{reason}"
    ):
        VGGishPostprocessor(path)


def test_postprocess_errors(tmp_path, pca):
    with pytest.raises(FileNotFoundError, match="download"):
        VGGishPostprocessor(tmp_path / "absent.npz")
    np.savez(tmp_path / "nokey.npz", pca_eigen_vectors=np.eye(128))
    with pytest.raises(ValueError, match="lacks pca_means"):
        VGGishPostprocessor(tmp_path / "nokey.npz")
    np.savez(tmp_path / "shape.npz", pca_eigen_vectors=np.eye(64), pca_means=np.zeros(128))
    with pytest.raises(ValueError, match=r"pca_eigen_vectors has shape \(64, 64\)"):
        VGGishPostprocessor(tmp_path / "shape.npz")
    np.savez(tmp_path / "means.npz", pca_eigen_vectors=np.eye(128), pca_means=np.zeros((1, 128)))
    with pytest.raises(ValueError, match=r"pca_means has shape \(1, 128\)"):
        VGGishPostprocessor(tmp_path / "means.npz")
    post = VGGishPostprocessor(pca[0])
    with pytest.raises(ValueError, match=r"shape \(n, 128\)"):
        post.postprocess(np.zeros((2, 64)))
    with pytest.raises(ValueError, match="NaN"):
        post.postprocess(np.full((1, 128), np.nan))
