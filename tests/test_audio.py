import numpy as np
import pytest
import soundfile as sf

from hitrank import audio, truncation
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


def test_mp3_decoder_notes_name_their_file(tmp_path, capfd, caplog):
    # libmpg123 writes "Note: Illegal Audio-MPEG-Header ..." to file descriptor 2 itself,
    # naming no file; hitrank logs it with the file's name instead
    caplog.set_level("DEBUG", logger="hitrank.audio")
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio\n" * 100)
    with pytest.raises(AudioLoadError, match="cannot decode"):
        audio.load(text)
    assert "Illegal Audio-MPEG-Header" not in capfd.readouterr().err
    assert any(repr(str(text)) in r.message and "Illegal Audio-MPEG-Header" in r.message
               for r in caplog.records if r.levelname == "DEBUG")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # the error names it
    # bytes of junk inside a whole MP3: it decodes, the skip is warned about once per file
    sr = 22050
    sf.write(tmp_path / "m.mp3", 0.3 * np.sin(2 * np.pi * 440 * np.arange(10 * sr) / sr), sr, format="MP3")
    whole = (tmp_path / "m.mp3").read_bytes()
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(whole[: len(whole) // 2] + bytes(400) + whole[len(whole) // 2:])
    caplog.clear()
    for _ in range(2):
        y, duration = audio.load(damaged)
        assert duration == pytest.approx(10, abs=0.1) and np.isfinite(y).all()
    assert "Note:" not in capfd.readouterr().err
    warned = [r.message for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [f"{str(damaged)!r}: the decoder skipped damaged data and went on (-v shows its notes); "
                      "the audio may hold a glitch: download, copy or export the file again if it sounds wrong"]
    caplog.clear()
    audio.load(tmp_path / "m.mp3")  # a whole file: nothing to say
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_decoder_notes_restore_stderr_when_nested_or_without_a_stderr(tmp_path, monkeypatch):
    import os
    import sys

    def where():
        st = os.fstat(2)
        return st.st_dev, st.st_ino

    before = where()
    with audio.decoder_notes("outer"):
        with audio.decoder_notes("inner"):  # one capture at a time: the inner one passes through
            pass
        with pytest.raises(KeyError):
            with audio.decoder_notes("inner"):
                raise KeyError("x")
    assert where() == before
    monkeypatch.setattr(sys, "stderr", None)  # Python started with file descriptor 2 closed
    sf.write(tmp_path / "t.wav", np.zeros(100, np.float32) + 0.1, 22050)
    assert audio.info(tmp_path / "t.wav").frames == 100
    assert where() == before


def _silent_or_music(tmp_path, name, y, sr=22050, subtype=None):
    sf.write(tmp_path / name, y.astype(np.float32), sr, subtype=subtype)
    return audio.load_mid30(tmp_path / name, allow_silent=True)


def test_audio_with_no_sound_to_analyse_is_silent_and_quiet_music_is_not(tmp_path):
    # before: a DC offset, one click in 40 s, a one-sample or a 0.1 s file were ranked like music
    sr = 22050
    t = np.arange(40 * sr) / sr
    click = np.zeros(40 * sr)
    click[20 * sr] = 0.9
    nothing = {"dc.wav": np.full(40 * sr, 0.5), "click.wav": click, "one sample.wav": np.array([0.5]),
               "tenth.wav": 0.3 * np.sin(2 * np.pi * 440 * t[: sr // 10]),
               "dither.wav": 1e-4 * np.random.default_rng(0).standard_normal(40 * sr),  # -80 dBFS noise
               # constant levels that a mean over the whole segment would not remove: a 5 s file
               # padded to 30 s, a step, a level with a dropout
               "short dc.wav": np.full(5 * sr, 0.5), "step.wav": np.where(t < 20, 0.0, 0.3),
               "dropout.wav": np.where(np.abs(t - 20) < 0.05, 0.0, 0.4)}
    for name, y in nothing.items():
        seg = _silent_or_music(tmp_path, name, y, subtype="FLOAT")
        assert seg.silent, name
        with pytest.raises(AudioLoadError, match=r"(silent in the analysed segment \(\d\.\d\d s above -60 dBFS, "
                                                 r"at least 0.25 s needed: a constant level, a click, a file too short, or a "
                                                 r"quiet stretch of the song\?\)|too short \(the file is 0.[01]0 s long, at "
                                                 r"least 1 s needed\))"):
            audio.load_mid30(tmp_path / name)
    # a file under 1 s is all but padding in its segment: silent (ranked last), though it holds sound
    assert _silent_or_music(tmp_path, "half second.wav", 0.3 * np.sin(2 * np.pi * 440 * t[: sr // 2])).silent
    with pytest.raises(AudioLoadError, match=r"audio is too short \(the file is 0.50 s long, at least 1 s needed\)"):
        audio.load_mid30(tmp_path / "half second.wav")
    assert _silent_or_music(tmp_path, "zeros.wav", np.zeros(40 * sr)).silent
    with pytest.raises(AudioLoadError, match=r"silent in the analysed segment \(digital silence\)"):
        audio.load_mid30(tmp_path / "zeros.wav")
    music = {"quiet.wav": 0.003 * np.sin(2 * np.pi * 220 * t),  # about -53 dBFS RMS: quiet, not silent
             "two seconds.wav": 0.3 * np.sin(2 * np.pi * 440 * t[: 2 * sr]),  # short: padded, not silent
             "offset.wav": 0.4 + 0.05 * np.sin(2 * np.pi * 440 * t),  # music on a DC offset
             # three 0.6 s bursts in the Mid-30 segment (about 2.5 s of frames above -60 dBFS)
             "bursts.wav": np.where((t % 10) < 0.6, 0.3 * np.sin(2 * np.pi * 440 * t), 0.0),
             # a 6 s metronome at 70 bpm: seven 20 ms clicks, 0.5 s of frames above -60 dBFS
             "metronome.wav": np.where((t[: 6 * sr] % (60 / 70)) < 0.02, 0.5 * np.sin(2 * np.pi * 1000 * t[: 6 * sr]), 0)}
    for name, y in music.items():
        seg = _silent_or_music(tmp_path, name, y)
        assert not seg.silent, name
    assert audio.audible_seconds(np.zeros(10)) == 0.0 and audio.audible_seconds(np.ones(sr) * 0.1, sr) == 0.0
    assert audio.audible_seconds(0.1 * np.sin(2 * np.pi * 440 * t), sr) == pytest.approx(40.0, abs=0.05)


def test_float_samples_far_beyond_full_scale_are_refused_and_a_little_beyond_kept(tmp_path):
    sr = 22050
    y = np.sin(2 * np.pi * 440 * np.arange(40 * sr) / sr)
    sf.write(tmp_path / "unscaled.wav", (3000 * y).astype(np.float32), sr, subtype="FLOAT")
    for load in (audio.load, audio.load_mid30):
        with pytest.raises(AudioLoadError, match=r"unscaled.wav': samples reach 3000 times full scale \(\+70 dBFS\): "
                                                 r"floating-point audio written without scaling\? Rescale"):
            load(tmp_path / "unscaled.wav")
    sf.write(tmp_path / "hot.wav", (1.5 * y).astype(np.float32), sr, subtype="FLOAT")  # a hot master: fine
    assert not audio.load_mid30(tmp_path / "hot.wav").silent


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
    (tmp_path / "header.wav").write_bytes(data[:44])  # cut right after its header: truncated, not empty
    with pytest.raises(AudioLoadError, match=r"file is truncated: header claims 882000 frames, only 0 present"):
        audio.info(tmp_path / "header.wav")
    # a recorder writing to a pipe cannot know the length: 0x7FFFFFFF is a placeholder, not a claim
    streamed = bytearray(data)
    i = streamed.index(b"data")
    streamed[i + 4: i + 8] = struct.pack("<I", 0x7FFFFFFF)
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert audio.info(tmp_path / "streamed.wav").frames == 882000
    # compressed WAV (blocks of many frames): the block count is not a frame count; not judged
    sf.write(tmp_path / "adpcm.wav", y, 22050, subtype="IMA_ADPCM")
    assert audio.info(tmp_path / "adpcm.wav").frames >= 882000  # padded to whole blocks


# ----------------------------------------------------------------------------- cut-off files
#: the compressed formats soundfile (libsndfile 1.2) writes: suffix -> (format, subtype, Hz)
COMPRESSED = {"ogg": ("OGG", "VORBIS", 22050), "opus": ("OGG", "OPUS", 48000),
              "flac": ("FLAC", None, 22050), "mp3": ("MP3", None, 22050)}
#: the fact each format's "file is truncated" error names
CUT_REASON = {"ogg": "last Ogg page", "opus": "last Ogg page",
              "flac": r"the FLAC header \(STREAMINFO\) claims \d+ frames", "mp3": "Xing header claims"}
SECONDS = (0.01, 0.3, 2.7, 40.0)  # very short (a single audio page or frame) to song length


def _song(seconds: float, sr: int) -> np.ndarray:
    """Two tones, one with a slow vibrato: something for an encoder to code, (n,) float32."""
    t = np.arange(int(round(seconds * sr))) / sr
    y = 0.2 * np.sin(2 * np.pi * 330 * t) + 0.1 * np.sin(2 * np.pi * 523 * t + 3 * np.sin(np.pi * t))
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """``{(suffix, seconds): path}``: whole compressed files, written once."""
    d = tmp_path_factory.mktemp("whole")
    files = {}
    for suffix, (fmt, subtype, sr) in COMPRESSED.items():
        for seconds in SECONDS:
            files[suffix, seconds] = d / f"song {seconds} s.{suffix}"
            sf.write(files[suffix, seconds], _song(seconds, sr), sr, format=fmt, subtype=subtype)
    return files


def _cut(src, dst, keep):
    """Write the first ``keep`` bytes of ``src`` (a fraction of them when a float) to ``dst``."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    return dst


def _ogg_pages(data: bytes) -> list[int]:
    """Where the pages of a whole Ogg file start, read from their headers (RFC 3533)."""
    starts, pos = [], 0
    while pos < len(data):
        assert data[pos: pos + 5] == b"OggS\0"
        starts.append(pos)
        n = data[pos + 26]
        pos += 27 + n + sum(data[pos + 27: pos + 27 + n])
    assert pos == len(data)
    return starts


def _ogg_crc_bitwise(data: bytes) -> int:
    """Ogg's CRC-32 straight from its definition (RFC 3533: polynomial 0x04C11DB7, MSB first,
    initial value 0, no final XOR), one bit at a time: the oracle."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


@pytest.mark.parametrize("seconds", SECONDS)
@pytest.mark.parametrize("suffix", list(COMPRESSED))
def test_whole_compressed_files_are_accepted(whole, suffix, seconds):
    p = whole[suffix, seconds]
    sr = COMPRESSED[suffix][2]
    assert audio.info(p).frames == int(round(seconds * sr))
    y, duration = audio.load(p)
    assert duration == pytest.approx(seconds, abs=1e-3) and len(y) == pytest.approx(seconds * 22050, abs=2)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("seconds", [0.3, 40.0])
@pytest.mark.parametrize("suffix", list(COMPRESSED))
def test_cut_off_compressed_files_are_refused_by_every_loader(whole, tmp_path, suffix, seconds, keep):
    # before: a cut Ogg file decoded as a shorter song (40 s cut to 90%: 32.6 s), and a cut
    # FLAC or MP3 claimed 40 s and decoded less, passing Mid-30 when the window was still there
    p = _cut(whole[suffix, seconds], tmp_path / f"cut at {keep}.{suffix}", keep)
    for load in (audio.info, audio.load, audio.load_mid30):
        with pytest.raises(AudioLoadError, match=rf"file is truncated: .*{CUT_REASON[suffix]}") as err:
            load(p)
        message = str(err.value)
        assert message.startswith(repr(str(p))) and "\n" not in message
        assert message.endswith("; download, copy or export the file again")


def test_an_ogg_file_cut_inside_a_page_is_refused_with_the_reason(whole, tmp_path):
    src = whole["ogg", 40.0]
    data = src.read_bytes()
    pages = _ogg_pages(data)
    assert len(pages) >= 10
    for start in pages[1:]:  # the first page starts at byte 0: nothing to open
        # cut between two pages: every page is whole; like a file written without the
        # end-of-stream flag (accepted, playable), it reads as a shorter song
        p = _cut(src, tmp_path / "between.ogg", start)
        assert truncation.ogg_truncation(p) is None
        for inside in (1, 4, 5, 26, 27):  # in the capture pattern, the header, the segment table
            p = _cut(src, tmp_path / "header.ogg", start + inside)
            with pytest.raises(AudioLoadError, match=rf"the last Ogg page's header is cut off \({inside} bytes "
                                                     rf"present at byte {start}\)"):
                audio.info(p)
    end = len(data)
    for n in range(pages[1] + 30, end, 97):  # inside page bodies
        at = max(s for s in pages if s < n)
        p = _cut(src, tmp_path / "body.ogg", n)
        with pytest.raises(AudioLoadError, match=rf"(last Ogg page is cut off \(at byte {at}, {n - at} of)"
                                                 r"|(header is cut off)"):
            audio.info(p)


def test_ogg_checksum_is_the_bitwise_definition(whole, rng):
    for n in (0, 1, 3, 27, 300):
        data = rng.bytes(n)
        assert truncation._ogg_crc(data) == _ogg_crc_bitwise(data)
    data = whole["ogg", 0.3].read_bytes()
    pages = _ogg_pages(data) + [len(data)]
    for start, end in zip(pages, pages[1:], strict=False):
        page = data[start: start + 22] + bytes(4) + data[start + 26: end]
        stored = int.from_bytes(data[start + 22: start + 26], "little")
        assert truncation._ogg_crc(page) == _ogg_crc_bitwise(page) == stored


def _plant_fake_pages(data: bytes, pages: list[int]) -> bytes:
    """``data`` with a fake page header ("OggS", version 0, no end-of-stream flag, a body
    claiming 65 kB, past the end of the file) written into the packet data of its last two
    pages, whose checksums are then fixed: a valid file whose packets hold "OggS"."""
    fake = b"OggS\0\0" + bytes(20) + b"\xff" + b"\xff" * 255
    out = bytearray(data)
    bounds = pages + [len(data)]
    for start, end in zip(bounds[-3:-1], bounds[-2:], strict=True):
        body = start + 27 + data[start + 26]
        assert end - body > len(fake) + 10
        out[body + 10: body + 10 + len(fake)] = fake
        out[start + 22: start + 26] = bytes(4)
        out[start + 22: start + 26] = _ogg_crc_bitwise(bytes(out[start:end])).to_bytes(4, "little")
    return bytes(out)


def test_oggs_inside_packet_data_is_not_taken_for_a_page(whole, tmp_path, monkeypatch):
    data = whole["ogg", 40.0].read_bytes()
    pages = _ogg_pages(data)
    planted = _plant_fake_pages(data, pages)
    assert planted.count(b"OggS") == len(pages) + 2
    p = tmp_path / "planted.ogg"
    p.write_bytes(planted)
    assert truncation.ogg_truncation(p) is None and audio.info(p).frames == 40 * 22050
    # the tail window starting anywhere, even just before a fake page: still whole
    for start in (pages[-2] - 1, pages[-2], pages[-2] + 37, pages[-1] - 1, pages[-1], pages[-1] + 37,
                  len(data) - 40):
        monkeypatch.setattr(truncation, "OGG_TAIL_BYTES", len(data) - start)
        assert truncation.ogg_truncation(p) is None, start
    monkeypatch.undo()
    # cut inside the last page, after its fake page: the real last page is cut off
    cut = _cut(p, tmp_path / "planted cut.ogg", len(data) - 20)
    with pytest.raises(AudioLoadError, match=rf"the last Ogg page is cut off \(at byte {pages[-1]},"):
        audio.info(cut)


def test_ogg_tail_window_may_start_anywhere(whole, tmp_path, monkeypatch):
    src = whole["opus", 40.0]  # 300 kB: longer than the tail read
    data = src.read_bytes()
    pages = _ogg_pages(data)
    assert len(data) > truncation.OGG_TAIL_BYTES
    cut = _cut(src, tmp_path / "cut.opus", pages[-1] + 100)
    for start in [p + d for p in pages[-3:] for d in (-1, 0, 1, 27)]:
        monkeypatch.setattr(truncation, "OGG_TAIL_BYTES", len(data) - start)
        assert truncation.ogg_truncation(src) is None, start  # whole: never refused
        monkeypatch.setattr(truncation, "OGG_TAIL_BYTES", pages[-1] + 100 - start)
        reason = truncation.ogg_truncation(cut)
        if start <= pages[-2]:  # the window holds the whole page before the cut one
            assert reason.startswith(f"the last Ogg page is cut off (at byte {pages[-1]}, 100 of"), start
        else:  # no whole page to judge from: not judged (the real window holds two pages)
            assert reason is None, start


def test_ogg_file_with_a_tag_after_its_last_page_is_whole(whole, tmp_path):
    p = tmp_path / "tagged.ogg"
    p.write_bytes(whole["ogg", 2.7].read_bytes() + b"TAG" + b"an ID3v1 tag".ljust(125, b"\0"))
    assert truncation.ogg_truncation(p) is None
    assert audio.info(p).frames == int(2.7 * 22050)


def test_flac_cut_by_one_byte_is_refused_but_a_trailing_tag_is_not(whole, tmp_path):
    src = whole["flac", 40.0]
    with pytest.raises(AudioLoadError, match=r"STREAMINFO\) claims 882000 frames \(40.0 s\) and the last"):
        audio.info(_cut(src, tmp_path / "short.flac", len(src.read_bytes()) - 1))
    tagged = tmp_path / "tagged.flac"
    tagged.write_bytes(src.read_bytes() + b"TAG" + bytes(125))
    assert audio.info(tagged).frames == 882000


def test_mp3_xing_size_counts_from_the_first_frame_after_id3v2_tags(whole, tmp_path):
    mp3 = whole["mp3", 40.0].read_bytes()
    assert truncation.mp3_xing_stream(whole["mp3", 40.0]) == (0, len(mp3))  # libsndfile writes one
    body = b"TIT2" + (6).to_bytes(4, "big") + b"\0\0\0title" + bytes(700)  # a title and padding
    size = bytes((len(body) >> shift) & 0x7F for shift in (21, 14, 7, 0))  # 7 bits a byte
    tag = b"ID3\x03\0\0" + size + body
    p = tmp_path / "tagged.mp3"
    p.write_bytes(tag + mp3)
    assert truncation.mp3_xing_stream(p) == (len(tag), len(mp3))
    assert audio.info(p).frames == 882000 and audio.read_tags(p)["title"] == "title"
    with pytest.raises(AudioLoadError, match=rf"Xing header claims {len(mp3)} bytes of MPEG audio, "
                                             rf"only {len(mp3) - 1} present"):
        audio.info(_cut(p, tmp_path / "cut.mp3", len(tag) + len(mp3) - 1))


def test_mp3_without_a_xing_header_is_not_judged(whole, tmp_path):
    """No Xing/Info header, no recorded length: libsndfile estimates one from the file's size
    and first frame, so a cut-off file is not refused (hitrank does not guess)."""
    mp3 = whole["mp3", 40.0].read_bytes()
    xing_frame = 72 * 64000 // 22050  # B: MPEG-2 Layer III at 64 kbit/s, 22050 Hz, no padding
    assert mp3[:3] == b"\xff\xf3\x80" and mp3[xing_frame: xing_frame + 2] == b"\xff\xf3"
    p = tmp_path / "bare.mp3"
    p.write_bytes(mp3[xing_frame:])
    assert truncation.mp3_xing_stream(p) is None
    assert audio.info(_cut(p, tmp_path / "bare cut.mp3", 0.5)).frames > 0


def test_real_ogg_vorbis_files_are_whole_and_their_cuts_are_not(tmp_path):
    from .conftest import SHARED_DATA

    folder = SHARED_DATA / "emotify_dev" / "audio"
    files = sorted(folder.glob("*/*.ogg"))
    if not files:
        pytest.skip(f"the Emotify dev songs are not at {folder} (../shared/data/emotify_dev)")
    assert all(audio.info(f).duration > 20 for f in files)  # none refused (excerpts of 26-61 s)
    for f in files[:: max(1, len(files) // 3)][:3]:
        for keep in (0.2, 0.5, 0.9):
            with pytest.raises(AudioLoadError, match="file is truncated: the last Ogg page is cut off"):
                audio.info(_cut(f, tmp_path / f"{f.stem} {keep}.ogg", keep))


def test_a_flac_whose_header_records_no_length_is_refused_by_name(tmp_path):
    """A FLAC written as a stream (STREAMINFO total samples 0): libsndfile reports 2**63 - 1
    frames; hitrank names the file and says to re-encode, not an 'array is too big' later."""

    whole = tmp_path / "whole.flac"
    sf.write(whole, (0.3 * np.sin(np.arange(22050 * 2) / 10)).astype("float32"), 22050)
    data = bytearray(whole.read_bytes())
    at = 8 + 10  # "fLaC", the block header, then STREAMINFO's rate/channels/bits/total field
    field = int.from_bytes(data[at: at + 8], "big") & ~((1 << 36) - 1)  # total samples: 0
    data[at: at + 8] = field.to_bytes(8, "big")
    streamed = tmp_path / "streamed.flac"
    streamed.write_bytes(bytes(data))
    assert audio.info(whole).frames == 44100
    with pytest.raises(AudioLoadError, match=r"streamed\.flac.*records no length.*re-encode"):
        audio.info(streamed)
    with pytest.raises(AudioLoadError, match="records no length"):
        audio.load_mid30(streamed)


def test_whole_files_the_checks_might_mistake_for_cut_ones_are_accepted(whole, tmp_path):
    """A FLAC behind an ID3v2 tag (libsndfile cannot seek to its very last frame) and an Ogg
    file whose last page lacks the end-of-stream flag (Android recorders, MuseScore exports)
    are whole: accepted. A cut Ogg file with bytes appended after the cut is refused."""
    body = b"TIT2" + (6).to_bytes(4, "big") + b"\0\0\0title" + bytes(990)
    size = bytes((len(body) >> shift) & 0x7F for shift in (21, 14, 7, 0))
    tagged = tmp_path / "tagged.flac"
    tagged.write_bytes(b"ID3\x03\0\0" + size + body + whole["flac", 40.0].read_bytes())
    assert audio.info(tagged).frames == 882000
    data = bytearray(whole["ogg", 40.0].read_bytes())
    last = _ogg_pages(bytes(data))[-1]
    data[last + 5] &= ~0x04  # the end-of-stream flag
    data[last + 22: last + 26] = bytes(4)
    data[last + 22: last + 26] = _ogg_crc_bitwise(bytes(data[last:])).to_bytes(4, "little")
    no_eos = tmp_path / "no_eos.ogg"
    no_eos.write_bytes(bytes(data))
    assert audio.info(no_eos).frames == 40 * 22050
    cut = tmp_path / "cut_then_tagged.ogg"
    cut.write_bytes(bytes(data[: len(data) - 100]) + b"TAG" + bytes(125))
    with pytest.raises(AudioLoadError, match=r"file is truncated: the Ogg page at byte \d+ is cut off or "
                                             r"damaged \(its checksum does not match"):
        audio.info(cut)
