"""Audio whose samples are NaN or infinite fails at decoding, saying so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipelines import audio
from pipelines.audio import decode, prepare_clip
from schemas.failures import ClipFailure, FailureReason
from tests.ingest_helpers import audiomill, ledger
from tests.media import write_media


def _float_wav(path: Path, bad: float, count: int = 100) -> Path:
    x = np.full((16000, 2), 0.25, dtype=np.float32)
    x[1000 : 1000 + count, 1] = bad
    sf.write(path, x, 16000, subtype="FLOAT")
    return path


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_a_decode_error(tmp_path: Path, bad: float):
    path = _float_wav(tmp_path / "bad.wav", bad)
    for call in (lambda: decode(path), lambda: audio._decode_ffmpeg(path, None, None),
                 lambda: prepare_clip(path, target_sr=8000, clip_seconds=1.0)):  # fmt: skip
        with pytest.raises(ClipFailure) as err:
            call()
        assert err.value.reason == FailureReason.DECODE_ERROR
        assert f"{path}: the audio holds NaN or infinite samples (100 of 32000)" in str(err.value)


def test_non_finite_samples_outside_the_cut_do_not_matter(tmp_path: Path):
    path = _float_wav(tmp_path / "bad.wav", np.nan)  # NaN in frames 1000-1099
    assert decode(path, 0.5, 1.0).samples.shape == (8000, 2)


def test_ingest_records_nan_audio_as_a_decode_error(tmp_path: Path):
    _float_wav(tmp_path / "nan.wav", np.nan)
    write_media(tmp_path / "ok.wav", 1.0, 16000)
    rows = tmp_path / "m.csv"
    rows.write_text("path,labels\nnan.wav,x\nok.wav,x\n")
    out = tmp_path / "ds"
    audiomill("ingest", "--segments", str(rows), "--out", str(out), "--clip-seconds", "1",
              "--sample-rate", "8000")  # fmt: skip
    reasons = {
        r["source"].rsplit("/", 1)[-1]: (r["reason"], r["detail"]) for r in ledger(out).values()
    }
    assert reasons["ok.wav"][0] is None
    reason, detail = reasons["nan.wav"]
    assert reason == "decode_error"
    assert "the audio holds NaN or infinite samples (100 of 32000)" in detail


def test_audio_too_short_for_one_output_sample_is_too_short(tmp_path: Path):
    path = tmp_path / "two.wav"
    sf.write(path, np.array([0.1, 0.2], dtype=np.float32), 48000, subtype="FLOAT")
    with pytest.raises(ClipFailure) as err:
        prepare_clip(path, target_sr=1000, clip_seconds=1.0)
    assert err.value.reason == FailureReason.TOO_SHORT
    assert f"{path}: 2 frame(s) at 48000 Hz hold no sample at 1000 Hz" in str(err.value)
