"""A corpus of bad and odd inputs: every file is either extracted or failed with a named
reason, the batch goes on, nothing is lost, and the exit code says whether anything failed."""

import errno
import json
import os
import threading

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hitrank.cli import main
from hitrank.fileio import atomic_write_text

SR = 22050
#: digital silence: extract and rank keep it, flagged (ranked last; left out of training);
#: tags, highlight and descriptors refuse it (nothing to describe)
SILENT = "silent.wav"


def _tone(seconds, sr=SR, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    return np.repeat(y[:, None], channels, 1) if channels > 1 else y


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    expect_fail = {}
    (d / "empty.wav").write_bytes(b"")
    expect_fail["empty.wav"] = "0 bytes"
    (d / "random.wav").write_bytes(np.random.default_rng(0).bytes(50_000))
    expect_fail["random.wav"] = "cannot decode"
    (d / "text.mp3").write_text("ID3? no, just text\n" * 200)
    expect_fail["text.mp3"] = "cannot decode"
    sf.write(d / "long.wav", _tone(60), SR)
    data = (d / "long.wav").read_bytes()
    # the header says 60 s but the file holds 20 s (a cut-off download): libsndfile trusts the
    # size and would read a 20 s song; the data chunk's header says it was cut
    (d / "claims_more.wav").write_bytes(data[: len(data) // 3])
    expect_fail["claims_more.wav"] = "file is truncated: header claims 1323000 frames"
    (d / "long.wav").unlink()
    y = _tone(40)
    y[20 * SR] = np.nan  # in the middle, where Mid-30 reads
    y[21 * SR] = np.inf
    sf.write(d / "nan.wav", y, SR, subtype="FLOAT")
    expect_fail["nan.wav"] = "NaN"
    sf.write(d / "unscaled.wav", 3000 * _tone(40), SR, subtype="FLOAT")  # int16 values written as floats
    expect_fail["unscaled.wav"] = "samples reach 900 times full scale (+59 dBFS)"
    (d / "phone memo.m4a").write_bytes(b"\0\0\0 ftypM4A " + bytes(2000))  # before: skipped without a word
    expect_fail["phone memo.m4a"] = "the .m4a format cannot be decoded here"
    sf.write(d / SILENT, np.zeros(SR * 40, np.float32), SR)  # kept and flagged (see SILENT)
    (d / "x.mp3").mkdir()
    expect_fail["x.mp3"] = "directory"
    os.symlink(d / "nowhere.wav", d / "dangling.wav")
    expect_fail["dangling.wav"] = "broken symbolic link"
    os.symlink("loop.wav", d / "loop.wav")  # a link to itself
    expect_fail["loop.wav"] = "symbolic link loop"
    # cut-off compressed files: a Vorbis file would read as a shorter song (the cut Ogg page
    # tells), an MP3 and a FLAC claim 45 s and decode less (the Xing header, STREAMINFO tell)
    for name, keep, reason in (("truncated.mp3", 0.5, "its Xing header claims"),
                               ("truncated.ogg", 0.5, "the last Ogg page"),
                               ("truncated.flac", 0.9, "the FLAC header (STREAMINFO) claims 992250")):
        sf.write(d / f"full{name}", _tone(45), SR, subtype="VORBIS" if name.endswith("ogg") else None)
        data = (d / f"full{name}").read_bytes()
        (d / name).write_bytes(data[: int(len(data) * keep)])
        (d / f"full{name}").unlink()
        expect_fail[name] = f"file is truncated: {reason}"
    # odd but valid
    sf.write(d / "one_second.wav", _tone(1), SR)
    sf.write(d / "eight_channels.wav", _tone(35, channels=8), SR)
    sf.write(d / "low_8k.wav", _tone(35, sr=8000), 8000)
    sf.write(d / "high_192k.wav", _tone(35, sr=192000), 192000)
    sf.write(d / "twenty_minutes.flac", _tone(1200, sr=8000), 8000)
    for name in ("with space.wav", "quote'\"s.wav", "ünïcødé ♪.wav", "-leading-dash.wav",
                 "<img src=x onerror=alert(1)>.wav"):
        sf.write(d / name, _tone(32), SR)
    return d, expect_fail


def test_extract_survives_every_kind(bad_corpus, tmp_path, capsys):
    d, expect_fail = bad_corpus
    code = main(["extract", str(d), "--out", str(tmp_path / "st"), "-q"])
    assert code == 1
    err = capsys.readouterr().err
    man = pd.read_csv(tmp_path / "st" / "manifest.csv", keep_default_na=False)
    listed = {p.name for p in d.iterdir()}
    assert set(man.song_id) == listed  # lost songs = 0: every entry is in the manifest
    failed = man[man.status == "failed"].set_index("song_id")
    for name, reason in expect_fail.items():
        assert name in failed.index, name
        assert reason in failed.loc[name, "error"], (name, failed.loc[name, "error"])
        assert repr(str(d / name)) in err or name in err
    ok = man[man.status == "ok"].set_index("song_id")
    for name in ("one_second.wav", "eight_channels.wav", "low_8k.wav", "high_192k.wav",
                 "twenty_minutes.flac", "with space.wav", "-leading-dash.wav", "ünïcødé ♪.wav"):
        assert name in ok.index, name
    assert bool(ok.loc["one_second.wav", "padded"]) is True
    assert bool(ok.loc[SILENT, "silent"]) is True and SILENT in err  # kept, flagged, named
    assert float(ok.loc["twenty_minutes.flac", "seg_start"]) == pytest.approx(585.0)
    mel = np.load(tmp_path / "st" / "mel_mid30.npy")
    assert np.isfinite(mel[ok.row.to_numpy()].astype(np.float32)).all()
    # a rerun does nothing new, and says so with the same exit code
    assert main(["extract", str(d), "--out", str(tmp_path / "st"), "-q"]) == 1


def test_bad_labels_csv(tmp_path, capsys):
    sf.write(tmp_path / "a.wav", _tone(31), SR)
    (tmp_path / "labels.csv").write_text(
        "song_id,path,artist,hit_score\n"
        "a,a.wav,x,0.5\n"
        "a,a.wav,x,0.7\n"          # duplicate id
        "b,missing.wav,x,0.1\n"    # no such file
        "c,a.wav,x,\n"             # missing score: extracted, not trained on
        "d,a.wav,x,abc\n"          # non-numeric
        "e,a.wav,x,-3\n"           # negative: a valid label (net liking is signed)
        "g,a.wav,x,inf\n"          # not finite
        "f,../outside.wav,x,0.2\n"  # escapes the folder
    )
    code = main(["extract", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "st"), "-q"])
    assert code == 1
    err = capsys.readouterr().err
    assert "duplicate song_id" in err and "outside the labels folder" in err and "does not exist" in err
    man = pd.read_csv(tmp_path / "st" / "manifest.csv", keep_default_na=False)
    assert set(man[man.status == "ok"].song_id) == {"a", "c", "d", "e", "g"}
    from hitrank.data import load_dataset
    from hitrank.store import FeatureStore

    with pytest.raises(Exception, match="only 2 songs"):  # a and e; c, d, g have no usable score
        load_dataset(FeatureStore.open(tmp_path / "st"))
    (tmp_path / "bad.csv").write_text("id,file\n1,a.wav\n")
    assert main(["extract", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "s2")]) == 2
    assert "missing column" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["cv", "--config", "table1/a_simple_cnn_mid30"], ["train", "--config", "table1/a_simple_cnn_mid30"],
    ["cv", "--config", "real/auto"], ["train", "--config", "real/auto"],
    ["learning-curve", "--config", "real/auto", "--sizes", "5,10"], ["table1"],
    ["highlighter", "train", "--config", "highlighter/hit_score"]])
def test_training_refuses_labels_without_hit_score_before_extracting(command, corpus, tmp_path, capsys,
                                                                    monkeypatch):
    """Every command that trains on --labels names the missing hit_score column in one line,
    before any audio is decoded (no store, no run folder); extract still reads such a CSV."""
    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))
    (tmp_path / "audio").symlink_to(corpus / "audio")
    labels = pd.read_csv(corpus / "labels.csv").head(2).rename(columns={"hit_score": "score"})
    labels.to_csv(tmp_path / "bad_col.csv", index=False)
    assert main([*command, "--labels", str(tmp_path / "bad_col.csv"), "--out", str(tmp_path / "run"), "-q"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {str(tmp_path / 'bad_col.csv')!r}: missing column 'hit_score' (training needs a hit score "
        "per song; found ['song_id', 'path', 'artist', 'score'])"]
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()
    if command[0] == "cv" and command[2] == "real/auto":  # hit_score is optional where nothing trains
        assert main(["extract", str(tmp_path / "bad_col.csv"), "--out", str(tmp_path / "st"), "-q"]) == 0
        assert (pd.read_csv(tmp_path / "st" / "manifest.csv").status == "ok").sum() == 2


def test_training_refuses_a_folder_as_labels(corpus, tmp_path, capsys):
    assert main(["cv", "--config", "table1/a_simple_cnn_mid30", "--labels", str(corpus / "audio"),
                 "--out", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "a folder; training reads its songs and hit scores from a labels CSV" in err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- every command
def _entries(d):
    return sorted(p for p in d.iterdir())


def _named(err: str, d, name: str) -> bool:
    return repr(str(d / name)) in err or name in err


def test_highlight_survives_every_kind(bad_corpus, capsys):
    d, expect_fail = bad_corpus
    files = [str(p) for p in _entries(d)]
    assert main(["highlight", *files, "--json", "-q"]) == 1
    out, err = capsys.readouterr()
    rows = [__import__("json").loads(line) for line in out.splitlines()]
    assert len(rows) == len(files)  # one JSON line per file, failed ones with their error
    failed = {os.path.basename(r["path"]): r["error"] for r in rows if "error" in r}
    rows = [r for r in rows if "error" not in r]
    done = {os.path.basename(r["path"]) for r in rows}
    for name in (*expect_fail, SILENT):
        assert _named(err, d, name) and name not in done and name in failed, name
    assert "NaN" in failed["nan.wav"] and not failed["nan.wav"].startswith("'")
    assert {"one_second.wav", "eight_channels.wav", "high_192k.wav", "-leading-dash.wav",
            "ünïcødé ♪.wav", "<img src=x onerror=alert(1)>.wav", "twenty_minutes.flac"} <= done
    # one error line per file as it fails, then the failures listed again at the end
    lines, n, summary = __import__("re").split(rf"(\d+) of {len(files)} files failed:\n", err)
    assert all(line.startswith("error: ") for line in lines.splitlines())
    assert int(n) == len(lines.splitlines()) == len(summary.splitlines()) >= len(expect_fail) + 1
    for name in (*expect_fail, SILENT):
        assert _named(summary, d, name), name
    padded = {os.path.basename(r["path"]): r["padded"] for r in rows}
    assert padded["one_second.wav"] and not padded["twenty_minutes.flac"]


def test_highlight_takes_a_folder_for_its_audio_files(tmp_path, capsys):
    import soundfile as sf

    sr = 22050
    t = np.arange(40 * sr) / sr
    song = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + (t > 20))).astype(np.float32)  # louder after 20 s
    (tmp_path / "album" / "disc 2").mkdir(parents=True)
    sf.write(tmp_path / "album" / "b.wav", song, sr)
    sf.write(tmp_path / "album" / "disc 2" / "a.flac", song[: 5 * sr], sr)
    (tmp_path / "album" / "notes.txt").write_text("not audio")
    (tmp_path / "empty").mkdir()
    assert main(["highlight", str(tmp_path / "album"), str(tmp_path / "empty"), "--json", "-q"]) == 1
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == [str(tmp_path / "album" / "b.wav"), str(tmp_path / "album" / "disc 2/a.flac"),
                                         str(tmp_path / "empty")]
    assert [r.get("padded") for r in rows] == [False, True, None]
    assert rows[2]["error"].startswith("no audio files found (looked for .wav")
    assert "1 of 3 files failed:" in err
    # files of one name in different folders: each plot keeps the folders that tell them apart
    sf.write(tmp_path / "album" / "disc 2" / "b.wav", song[::-1], sr)
    assert main(["highlight", str(tmp_path / "album"), "--json", "-q", "--plot", str(tmp_path / "plots")]) == 0
    plots = [json.loads(line)["plot"] for line in capsys.readouterr().out.splitlines()]
    assert plots == [str(tmp_path / "plots" / name) for name in
                     ("album/b.wav.highlight.png", "a.flac.highlight.png", "disc 2/b.wav.highlight.png")]
    assert all(os.path.getsize(p) > 1000 for p in plots)


@pytest.mark.skipif(__import__("importlib").util.find_spec("musicnn") is None,
                    reason="pip install --no-deps musicnn==0.1.0")
@pytest.mark.slow  # minutes on 2 cores: run by .ci/run with -m 'slow or scale'
def test_tags_survives_every_kind(bad_corpus, capsys):
    d, expect_fail = bad_corpus
    files = [str(p) for p in _entries(d)]  # the 20-minute song is 400 patches: the slowest test
    assert main(["tags", *files, "--json", "-q"]) == 1
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(files)  # one JSON line per file, failed ones with their error
    failed = {os.path.basename(r["path"]) for r in rows if "error" in r}
    rows = [r for r in rows if "error" not in r]
    done = {os.path.basename(r["path"]) for r in rows}
    for name in (*expect_fail, SILENT):
        assert _named(err, d, name) and name not in done and name in failed, name
    assert {"one_second.wav", "low_8k.wav", "-leading-dash.wav",
            "twenty_minutes.flac"} <= done
    assert all(np.isfinite(list(r["tags"].values())).all() for r in rows)
    n_failed = len(files) - len(rows)
    assert n_failed == len(expect_fail) + 1  # + the silent file
    assert f"{n_failed} of {len(files)} files failed" in err


@pytest.mark.slow  # minutes on 2 cores: run by .ci/run with -m 'slow or scale'
def test_descriptors_survive_every_kind(bad_corpus, tmp_path, capsys):
    d, expect_fail = bad_corpus
    assert main(["descriptors", str(d), "--out", str(tmp_path / "desc"), "-q"]) == 1
    err = capsys.readouterr().err
    desc = pd.read_csv(tmp_path / "desc" / "descriptors.csv", keep_default_na=False)
    fails = pd.read_csv(tmp_path / "desc" / "failures.csv", keep_default_na=False)
    assert set(desc.song_id) | set(fails.song_id) == {p.name for p in d.iterdir()}  # none lost
    for name in (*expect_fail, SILENT):
        assert name in set(fails.song_id) and _named(err, d, name), name
    assert "one_second.wav" in set(desc.song_id) and "twenty_minutes.flac" in set(desc.song_id)
    assert np.isfinite(desc.drop(columns=["song_id", "path", "artist"]).to_numpy(float)).all()


def test_rank_train_and_cv_survive_every_kind(bad_corpus, store, tmp_path, capsys, monkeypatch):
    import shutil

    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))
    d, expect_fail = bad_corpus
    assert main(["train", "--config", "configs/table1/a_simple_cnn_mid30.yaml", "--store", str(store),
                 "--out", str(tmp_path / "m"), "--set", "train.epochs=1", "-q"]) == 0
    capsys.readouterr()
    assert main(["rank", str(d), "--model", str(tmp_path / "m"), "--json", "-q"]) == 1
    out = json.loads(capsys.readouterr().out)
    ranked = {r["song_id"] for r in out["ranking"]}
    failed = {f["song_id"]: f["error"] for f in out["failures"]}
    assert ranked | set(failed) == {p.name for p in d.iterdir()}  # none lost
    for name, reason in expect_fail.items():
        assert reason in failed[name], (name, failed[name])
    assert all(np.isfinite(r["score"]) for r in out["ranking"])
    assert out["ranking"][-1]["song_id"] == SILENT and out["ranking"][-1]["silent"]  # ranked last
    # train / cv from a labels CSV that lists the bad files next to good songs
    rows = [{"song_id": p.name, "path": p.name, "artist": "", "hit_score": 0.1} for p in _entries(d)]
    good = tmp_path / "mix"
    shutil.copytree(d, good, symlinks=True)
    for i in range(12):
        sf.write(good / f"good{i}.wav", _tone(31 + i), SR)
        rows.append({"song_id": f"good{i}", "path": f"good{i}.wav", "artist": "", "hit_score": 0.01 * (i + 1)})
    pd.DataFrame(rows).to_csv(good / "labels.csv", index=False)
    for cmd in ("train", "cv"):
        code = main([cmd, "--config", "configs/table1/a_simple_cnn_mid30.yaml", "--labels", str(good / "labels.csv"),
                     "--out", str(tmp_path / cmd), "--set", "train.epochs=1", "--folds", "3", "-q"])
        assert code == 1, cmd  # ran, but some songs were left out
        err = capsys.readouterr().err
        for name in expect_fail:
            assert name in err, (cmd, name)
        listed = pd.read_csv(tmp_path / cmd / "failures.csv", keep_default_na=False)  # kept with the run
        assert set(expect_fail) <= set(listed.song_id) and listed.error.str.len().min() > 0, cmd
    assert json.loads((tmp_path / "cv" / "summary.json").read_text())["n_songs"] >= 20


def test_unreadable_file_is_named(tmp_path, capsys, monkeypatch):
    """A file without read permission (simulated: the tests run as root, which reads anything)."""
    import soundfile

    sf.write(tmp_path / "fine.wav", _tone(31), SR)
    sf.write(tmp_path / "locked.wav", _tone(31), SR)
    real = soundfile.SoundFile

    def guarded(path, *a, **k):
        if str(path).endswith("locked.wav"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(soundfile, "SoundFile", guarded)
    assert main(["extract", str(tmp_path), "--out", str(tmp_path / "st"), "-q"]) == 1
    assert "locked.wav" in capsys.readouterr().err
    man = pd.read_csv(tmp_path / "st" / "manifest.csv", keep_default_na=False).set_index("song_id")
    assert man.loc["fine.wav", "status"] == "ok"
    assert "Permission denied" in man.loc["locked.wav", "error"]


def test_a_pipe_and_a_store_that_is_a_file_are_named(tmp_path, capsys):
    d = tmp_path / "songs"
    d.mkdir()
    sf.write(d / "ok.wav", _tone(32), SR)
    os.mkfifo(d / "pipe.wav")
    # a writer that lets a reader of the pipe see its end, so that a regression fails instead of hanging
    threading.Thread(target=lambda: open(d / "pipe.wav", "wb").close(), daemon=True).start()
    assert main(["extract", str(d), "--out", str(tmp_path / "st"), "-q"]) == 1
    # before: "file is 0 bytes"
    assert f"{str(d / 'pipe.wav')!r}: not a regular file (a pipe, socket or device?)" in capsys.readouterr().err
    sf.write(d / "song.m4a", _tone(32), SR, format="WAV")  # a WAV named .m4a decodes by its content
    assert main(["extract", str(d), "--out", str(tmp_path / "st"), "-q"]) == 1
    man = pd.read_csv(tmp_path / "st" / "manifest.csv", keep_default_na=False).set_index("song_id")
    assert man.loc["song.m4a", "status"] == "ok" and man.loc["pipe.wav", "status"] == "failed"
    (tmp_path / "a file").write_text("")
    assert main(["extract", str(d), "--out", str(tmp_path / "a file"), "-q"]) == 2
    # before: "[Errno 17] File exists"
    assert f"{str(tmp_path / 'a file')!r} is a file, not a folder for a feature store: name a folder" in capsys.readouterr().err
    assert main(["descriptors", str(d), "--out", str(tmp_path / "a file"), "-q"]) == 2
    assert f"{str(tmp_path / 'a file')!r} is a file, not a folder for descriptors" in capsys.readouterr().err
    os.close(os.open(d / "pipe.wav", os.O_RDONLY | os.O_NONBLOCK))  # lets the writer go


# ----------------------------------------------------------------------------- misuse of commands
def test_a_highlighter_folder_an_unused_model_and_a_folder_for_a_checkpoint(tmp_path, capsys, caplog):
    """`highlight --model` takes the --out folder of `highlighter train` (before: "checkpoint
    file does not exist"); another folder is named as a folder; a model given to --method
    fallback is said to be unused (before: ignored without a word)."""
    import torch

    from hitrank.features import FeatureParams
    from hitrank.payload import save_payload
    from hitrank.thumbnail.attention import CHECKPOINT_NAME, AttentionHighlighter

    torch.manual_seed(0)
    (tmp_path / "hl").mkdir()
    save_payload(tmp_path / "hl" / CHECKPOINT_NAME, "highlighter", {
        "kwargs": {}, "feature_params": FeatureParams().to_dict(), "target": {},
        "state_dict": AttentionHighlighter().state_dict(), "info": {}})
    sf.write(tmp_path / "song.wav", _tone(45), SR)
    assert main(["highlight", str(tmp_path / "song.wav"), "--model", str(tmp_path / "hl"), "--json", "-q"]) == 0
    assert __import__("json").loads(capsys.readouterr().out)["method"] == "attention"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "fold_00.pt").write_bytes(b"")
    assert main(["highlight", str(tmp_path / "song.wav"), "--model", str(tmp_path / "run"), "-q"]) == 2
    assert (f"{str(tmp_path / 'run')!r} is not a highlighter run: it holds no highlighter.pt (it holds fold_00.pt: "
            "a ranking model?)") in capsys.readouterr().err
    assert main(["highlight", str(tmp_path / "song.wav"), "--method", "fallback", "--model", "x.pt"]) == 0
    assert "--model 'x.pt' is not used: --method fallback finds the highlight without a model" in caplog.text


def test_a_damaged_imported_model_says_to_import_it_again(tmp_path, monkeypatch, capsys):
    """An imported model is not copied or retrained by hand: its error names `pretrained import --force`."""
    from hitrank.runtime import models_dir

    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))
    folder = models_dir() / "yu2018-kkbox"
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"PK\x03\x04" + bytes(100))
    (folder / "run.json").write_text('{"format": "hitrank-run/1", "kind": "spectrogram", "command": "import", '
                                     '"name": "yu2018-kkbox", "pretrained": true}')
    (folder / "provenance.json").write_text("{}")
    sf.write(tmp_path / "song.wav", _tone(31), SR)
    assert main(["rank", str(tmp_path / "song.wav"), "--model", "yu2018-kkbox", "-q"]) == 2
    err = capsys.readouterr().err
    assert "import it again with `hitrank pretrained import HSP_CNN_FOLDER --force`" in err, err


@pytest.mark.parametrize("separator", [";", "\t"])
def test_labels_with_another_separator_are_named(tmp_path, capsys, separator):
    """Before: "missing column(s) ['song_id', 'path', ...] (found ['song_id;path;hit_score'])"."""
    sf.write(tmp_path / "a.wav", _tone(31), SR)
    (tmp_path / "labels.csv").write_text(f"song_id{separator}path{separator}hit_score\na{separator}a.wav{separator}1\n")
    assert main(["extract", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "st"), "-q"]) == 2
    assert (f"looks {separator!r}-separated (the header has {separator!r} and no comma); hitrank reads "
            "comma-separated CSV") in capsys.readouterr().err


def test_audio_a_workbook_or_binary_given_as_a_csv_is_named_as_such(tmp_path, capsys):
    """Before: a WAV given as raters printed its RIFF header as the columns it found, and random
    bytes were called ';'-separated."""
    sf.write(tmp_path / "a.wav", _tone(31), SR)
    (tmp_path / "audio.csv").write_bytes((tmp_path / "a.wav").read_bytes())
    (tmp_path / "book.csv").write_bytes(b"PK\x03\x04" + bytes(200))
    (tmp_path / "noise.csv").write_bytes(b"song_id,x\n" + bytes(range(256)) * 3)
    for name, kind in (("audio.csv", "WAV audio"), ("book.csv", "a zip file or an Excel workbook (.xlsx): save it as CSV"),
                       ("noise.csv", "binary data")):
        assert main(["extract", str(tmp_path / name), "--out", str(tmp_path / "st"), "-q"]) == 2
        assert f"{str(tmp_path / name)!r}: not a text CSV (it looks like {kind}" in capsys.readouterr().err
    # a row with more cells than the header: named, not read with its columns shifted
    from hitrank.corpus import read_text_table
    from hitrank.errors import LabelsError

    (tmp_path / "wide.csv").write_text("song_id,liked\ns1,1,,\ns2,1,0,extra\n")
    with pytest.raises(LabelsError, match=r"wide.csv': line 3 has 4 cells, the header 2 \(song_id, liked\)"):
        read_text_table(tmp_path / "wide.csv", "raters")
    (tmp_path / "wide.csv").write_text("song_id,liked\ns1,1,,\ns2,0\n")  # empty cells at the end: no cells
    assert read_text_table(tmp_path / "wide.csv").to_dict("list") == {"song_id": ["s1", "s2"], "liked": ["1", "0"]}
    # what spreadsheets write, read as before: empty columns (empty names may repeat), CR-only
    # line ends (Excel for Mac); an open quote is pandas' one-line error, not a traceback
    (tmp_path / "sheet.csv").write_text("song_id,liked,,\ns1,1,,\n")
    assert list(read_text_table(tmp_path / "sheet.csv").liked) == ["1"]
    (tmp_path / "mac.csv").write_bytes(b"song_id,liked\rs1,1\rs2,0\r")
    assert list(read_text_table(tmp_path / "mac.csv").song_id) == ["s1", "s2"]
    (tmp_path / "open.csv").write_text('song_id,liked\ns0,"1\n' + "s1,1\n" * 9000)
    with pytest.raises(LabelsError, match="cannot read raters CSV"):
        read_text_table(tmp_path / "open.csv", "raters")


def test_highlighter_training_names_what_it_leaves_out(corpus, tmp_path, capsys, caplog):
    """Before: rows with a bad score, silent and missing files were dropped without a word
    (exit 0), and a score <= 0 was refused as 'row 0' with a --set that does not exist."""
    import shutil

    songs = sorted((corpus / "audio").glob("*.wav"))[:10]
    rows = ["song_id,path,hit_score"]
    for i, p in enumerate(songs):
        shutil.copy(p, tmp_path / p.name)
        rows.append(f"g{i},{p.name},{i + 1}")
    sf.write(tmp_path / "silence.wav", np.zeros(SR * 20, np.float32), SR)
    rows += ["typo,a.wav,abc", "quiet,silence.wav,3", "gone,missing.wav,2", "neg,silence.wav,-0.5"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    args = ["highlighter", "train", "--labels", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "hl"),
            "--set", "epochs=1", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "needs scores > 0; 1 song(s) have other scores: neg (-0.5); correct or remove those rows" in err
    assert not (tmp_path / "hl").exists()  # refused before any work
    (tmp_path / "labels.csv").write_text("\n".join(rows[:-1]) + "\n")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 labels row(s) left out" in err and "2 songs failed" in err
    assert "silence.wav': audio is silent (digital silence): nothing to learn a highlight from" in err
    assert "missing.wav" in err
    assert "'abc' is not a number" in caplog.text
    summary = json.loads((tmp_path / "hl" / "summary.json").read_text())
    assert sorted(f[0] for f in summary["failures"]) == ["gone", "quiet"] and summary["n_train"] + summary["n_val"] == 10


def test_stereo_whose_channels_cancel_is_analysed_from_one_channel(tmp_path, caplog):
    """Left = -right mixes to digital silence: before, flagged silent without a reason."""
    from hitrank.audio import is_silent, load

    y = _tone(31)
    sf.write(tmp_path / "anti.wav", np.stack([y, -y], 1), SR, subtype="FLOAT")
    sf.write(tmp_path / "stereo.wav", np.stack([y, 0.5 * y], 1), SR, subtype="FLOAT")
    got, _ = load(tmp_path / "anti.wav", SR)
    assert not is_silent(got, SR) and np.allclose(got, y, atol=1e-6)
    assert "the channels cancel when mixed to mono" in caplog.text
    caplog.clear()
    assert np.allclose(load(tmp_path / "stereo.wav", SR)[0], 0.75 * y, atol=1e-6)  # an ordinary mix
    assert "cancel" not in caplog.text
    bad = y.copy()
    bad[SR * 10] = np.nan  # NaN in one channel only: refused, not taken for a cancelling mix
    sf.write(tmp_path / "nan_right.wav", np.stack([y, bad], 1), SR, subtype="FLOAT")
    with pytest.raises(Exception, match="NaN or infinite samples"):
        load(tmp_path / "nan_right.wav", SR)


def test_learning_curve_refuses_an_out_file_before_any_work(corpus, tmp_path, capsys, monkeypatch):
    """Before: "[Errno 17] File exists" after every size was fitted."""
    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))
    (tmp_path / "taken").write_text("")
    assert main(["learning-curve", "--config", "real/ridge", "--labels", str(corpus / "labels.csv"),
                 "--sizes", "5,10", "--out", str(tmp_path / "taken"), "-q"]) == 2
    assert f"{str(tmp_path / 'taken')!r} is a file, not a folder for a learning curve" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_a_failing_worker_pool_is_stopped_not_left_running():
    """After an error the local engine terminates its workers (before: left running past the
    command's end, a worker still starting printed a SemLock traceback of its own)."""
    from hitrank.engines import get_engine

    with pytest.raises(ZeroDivisionError):
        with get_engine("local", 2) as run:
            results = run(_divide_slowly, [0, 1, 2, 3], chunksize=1)
            pool_processes = list(__import__("multiprocessing").active_children())
            list(results)
    assert pool_processes and not any(p.is_alive() for p in pool_processes)


def _divide_slowly(x):
    import time

    time.sleep(0 if x == 0 else 20)
    return 1 / x


def test_an_output_path_through_a_file_is_named_in_words(tmp_path, capsys):
    """Before: "[Errno 17] File exists: 'afile'; ... run the same command again to resume"
    (rerunning fails the same way), and `fit --out FOLDER` failed after the work on its temp file."""
    from hitrank.cli import _os_error

    (tmp_path / "afile").write_text("")
    with pytest.raises(OSError) as exc:
        (tmp_path / "afile" / "x").mkdir(parents=True)
    assert _os_error(exc.value, True) == (f"{str(tmp_path / 'afile' / 'x')!r}: a part of the path is a file, not a "
                                          "folder; check the path (an output: choose another) (work done so far is saved)")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(OSError) as exc:  # the atomic write's rename: the target is named, not its temporary file
        os.replace(tmp_path / "afile", tmp_path / "folder.csv")
    assert _os_error(exc.value, False).startswith(f"{str(tmp_path / 'folder.csv')!r}: it is a folder, not a file")
    assert _os_error(OSError(errno.ENOSPC, "No space left on device", "x"), True) == (
        "'x': no space left on the device; free some space, then run the same command again to resume (work "
        "done so far is saved)")
    assert _os_error(OSError(5, "Input/output error"), False) == "[Errno 5] Input/output error"
    with pytest.raises(OSError) as exc:  # an atomic write into a folder that is gone: the file asked for is named
        atomic_write_text(tmp_path / "gone" / "summary.json", "{}")
    assert _os_error(exc.value, True).startswith(f"{str(tmp_path / 'gone' / 'summary.json')!r}: no such file or "
                                                 "folder; check the path")
    sf.write(tmp_path / "a.wav", _tone(31), SR)
    assert main(["fit", "--reference", str(tmp_path), "--candidates", str(tmp_path), "--out", str(tmp_path), "-q"]) == 2
    assert f"--out {str(tmp_path)!r} is a folder; give the file's name" in capsys.readouterr().err
    (tmp_path / "cands.csv").write_text("energy\n0.5\n")
    assert main(["fit", "--reference", str(tmp_path), "--candidates", str(tmp_path / "cands.csv"),
                 "--out", str(tmp_path / "cands.csv"), "-q"]) == 2  # before: the candidates replaced by the ranking
    assert "is --candidates: writing there would replace it" in capsys.readouterr().err
    assert (tmp_path / "cands.csv").read_text() == "energy\n0.5\n"
    assert main(["fit", "--reference", str(tmp_path / "a.wav"), "--candidates", str(tmp_path), "-q"]) == 2
    assert f"{str(tmp_path / 'a.wav')!r} is one audio file; give the folder" in capsys.readouterr().err


def test_groups_that_cannot_fill_the_folds_are_counted():
    from hitrank.data import make_folds
    from hitrank.errors import ConfigError

    ids = [f"s{i}" for i in range(12)]
    with pytest.raises(ConfigError, match=r"2 group\(s\) of songs cannot fill 3 folds .*group by another column"):
        make_folds(12, 3, 0, groups=np.array(["a", "b"] * 6), ids=ids)
