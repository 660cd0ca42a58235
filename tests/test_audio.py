import numpy as np
import pytest
import soundfile as sf

from hitrank import audio
from hitrank.constants import SEGMENT_SAMPLES
from hitrank.errors import AudioLoadError

from .conftest import write_tone


def test_mid30_window():
    assert audio.mid30_window(100.0) == (35.0, 65.0)
    assert audio.mid30_window(20.0) == (0.0, 30.0)


def test_mid30_decodes_the_middle(tmp_path):
    # a song whose amplitude encodes time: the segment must come from 35-65 s
    sr = 22050
    t = np.arange(100 * sr) / sr
    y = (0.001 * t * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    sf.write(tmp_path / "ramp.wav", y, sr, subtype="FLOAT")
    seg = audio.load_mid30(tmp_path / "ramp.wav")
    assert seg.start == 35.0 and not seg.padded and len(seg.audio) == SEGMENT_SAMPLES
    np.testing.assert_allclose(seg.audio, y[35 * sr: 65 * sr], atol=1e-6)


def test_resamples_and_downmixes(tmp_path):
    write_tone(tmp_path / "st.wav", seconds=40, sr=44100, channels=2)
    seg = audio.load_mid30(tmp_path / "st.wav")
    assert seg.sr == 22050 and len(seg.audio) == SEGMENT_SAMPLES
    spec = np.abs(np.fft.rfft(seg.audio))
    assert abs(np.argmax(spec) * 22050 / len(seg.audio) - 440) < 1


def test_short_song_is_padded_and_flagged(tmp_path):
    write_tone(tmp_path / "short.wav", seconds=5)
    seg = audio.load_mid30(tmp_path / "short.wav")
    assert seg.padded and len(seg.audio) == SEGMENT_SAMPLES
    assert np.all(seg.audio[6 * 22050:] == 0)


@pytest.mark.parametrize("kind,reason", [
    ("empty", "0 bytes"), ("text", "cannot decode"), ("missing", "does not exist"),
    ("dir", "is a directory"), ("silent", "silent"), ("nan", "NaN"),
])
def test_bad_files_raise_named_errors(tmp_path, kind, reason):
    p = tmp_path / f"bad {kind}.wav"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p = tmp_path / "notes.mp3"
        p.write_text("this is not audio\n" * 100)
    elif kind == "dir":
        p = tmp_path / "x.mp3"
        p.mkdir()
    elif kind == "silent":
        sf.write(p, np.zeros(22050 * 40, np.float32), 22050)
    elif kind == "nan":
        y = np.zeros(22050 * 40, np.float32) + 0.1
        y[22050 * 20] = np.nan
        sf.write(p, y, 22050, subtype="FLOAT")
    with pytest.raises(AudioLoadError, match=reason) as info:
        audio.load_mid30(p)
    assert str(p) in str(info.value)


def test_a_wav_cut_after_its_header_is_truncated_but_a_streamed_wav_is_not(tmp_path):
    import struct

    from hitrank import audio
    from hitrank.errors import AudioLoadError

    y = (0.3 * np.sin(np.arange(40 * 22050) / 22050 * 2 * np.pi * 330)).astype(np.float32)
    sf.write(tmp_path / "full.wav", y, 22050)
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioLoadError, match=r"file is truncated: header claims 882000 frames, only 44\d+ present"):
        audio.info(tmp_path / "cut.wav")
    # a recorder writing to a pipe cannot know the length: 0x7FFFFFFF is a placeholder, not a claim
    streamed = bytearray(data)
    i = streamed.index(b"data")
    streamed[i + 4: i + 8] = struct.pack("<I", 0x7FFFFFFF)
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert audio.info(tmp_path / "streamed.wav").frames == 882000
    # compressed WAV (blocks of many frames): the block count is not a frame count; not judged
    sf.write(tmp_path / "adpcm.wav", y, 22050, subtype="IMA_ADPCM")
    assert audio.info(tmp_path / "adpcm.wav").frames >= 882000  # padded to whole blocks
