import numpy as np
import pytest
import torch

from hitrank.constants import N_FRAMES, N_MELS
from hitrank.errors import ParameterError
from hitrank.features import FeatureParams, librosa_log_mel, log_mel


def _music(rng, seconds=30.0, sr=22050):
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 6))
    y = y * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t)) + 0.01 * rng.standard_normal(len(t))
    return y.astype(np.float32)


@pytest.mark.parametrize("window", ["hamming", "hann"])
@pytest.mark.parametrize("log", ["db", "log1p"])
def test_matches_librosa(rng, window, log):
    y = _music(rng)
    params = FeatureParams(window=window, log=log)
    ours = log_mel(y, params).numpy()
    ref = librosa_log_mel(y, params)
    assert ours.shape == ref.shape == (N_MELS, N_FRAMES)
    tol = 0.01 if log == "db" else 1e-4  # 0.01 dB; log1p output is in log10 units
    assert np.abs(ours - ref).max() <= tol


def test_paper_shape_is_323_frames(rng):
    assert FeatureParams().n_frames == 323
    assert log_mel(_music(rng)).shape == (128, 323)


def test_batch_equals_single(rng):
    ys = np.stack([_music(rng), _music(rng)[::-1].copy()])
    batch = log_mel(ys)
    for i in range(2):
        assert torch.allclose(batch[i], log_mel(ys[i]), atol=1e-3)


def test_tone_peaks_in_right_mel_bin():
    import librosa

    sr, f0 = 22050, 1000.0
    t = np.arange(sr * 30) / sr
    mel = log_mel(np.sin(2 * np.pi * f0 * t).astype(np.float32)).numpy()
    centres = librosa.mel_frequencies(n_mels=130, fmax=sr / 2)[1:-1]
    peak_bin = int(mel[:, 100].argmax())
    assert abs(centres[peak_bin] - f0) < 60


def test_bad_parameters_are_named():
    with pytest.raises(ParameterError, match="window='blackman'"):
        FeatureParams(window="blackman")
    with pytest.raises(ParameterError, match="log='ln'"):
        FeatureParams(log="ln")
