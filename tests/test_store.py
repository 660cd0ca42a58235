import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from hitrank.errors import StoreError
from hitrank.extract import extract
from hitrank.features import FeatureParams
from hitrank.store import FeatureStore


def test_store_layout_readable_with_numpy_and_pandas(store):
    mel = np.load(store / "mel_mid30.npy", mmap_mode="r")
    man = pd.read_csv(store / "manifest.csv")
    assert mel.dtype == np.float16 and mel.shape == (24, 128, 323)
    assert (man.status == "ok").all() and len(man) == 24
    assert set(man.columns) >= {"song_id", "path", "row", "seg_start", "seg_end", "duration",
                                "status", "error"}
    params = json.loads((store / "params.json").read_text())["features"]
    assert params["n_fft"] == 4096 and params["hop_length"] == 2048 and params["window"] == "hamming"
    assert np.isfinite(mel[man.row].astype(np.float32)).all()
    assert float(np.abs(mel[man.row[0]]).max()) > 0


def test_store_features_match_direct_extraction(store, corpus):
    from hitrank.extract import extract_song

    st = FeatureStore.open(store)
    row = st.manifest.iloc[3]
    feats, info = extract_song(row.path)
    np.testing.assert_array_equal(st.load([row.song_id])[0], feats)
    assert info["seg_start"] == pytest.approx(row.seg_start)


def test_a_network_output_that_is_not_finite_blames_the_network(corpus, monkeypatch):
    from hitrank import extract as ex
    from hitrank.errors import AudioLoadError

    path = pd.read_csv(corpus / "labels.csv").path.iloc[0]
    monkeypatch.setattr(ex, "_song_tags", lambda *a: np.full(50, np.nan, np.float32))
    with pytest.raises(AudioLoadError, match="tags network's output is not finite while the audio's log-mel is"):
        ex.extract_song(corpus / path, FeatureParams(tags="segment"))


def test_rerun_skips_and_params_are_enforced(store, corpus):
    rep = extract(corpus / "labels.csv", store, progress=False)
    assert rep.new == 0 and rep.skipped == 24 and rep.ok == 24  # ok: songs with features after the run
    assert rep.files == ["manifest.csv", "mel_mid30.npy"]
    with pytest.raises(StoreError, match="other parameters"):
        extract(corpus / "labels.csv", store, FeatureParams(window="hann"), progress=False)


def test_extract_summary_names_every_array_of_the_store(store, corpus, tmp_path, capsys):
    from hitrank.cli import main
    from hitrank.embeddings import with_embedding
    from hitrank.segments import params_for

    copy = tmp_path / "st"
    for name in ("params.json", "manifest.csv", "mel_mid30.npy"):
        (copy / name).parent.mkdir(exist_ok=True)
        (copy / name).write_bytes((store / name).read_bytes())
    assert main(["extract", str(corpus / "labels.csv"), "--out", str(copy)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"0 extracted, 24 already done, 0 failed -> {copy} (manifest.csv, mel_mid30.npy)")
    # tags, an embedding and contrast windows sit beside the log-mels: the summary names them
    params = with_embedding(params_for("hl30", None, tags="segment", tagger="musicnn", contrast="median"),
                            "musicnn", "song")
    assert FeatureStore(tmp_path / "other", params).files == [
        "manifest.csv", "mel_hl30.npy", "tags.npy", "emb_musicnn_song.npy", "contrast_hl30.npy"]


def test_failures_recorded_and_batch_goes_on(tmp_path, corpus):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("song_00000.wav", "song_00001.wav"):
        os.symlink(corpus / "audio" / name, src / name)
    (src / "broken.mp3").write_text("not audio")
    (src / "empty.wav").write_bytes(b"")
    rep = extract(src, tmp_path / "st", progress=False)
    assert rep.ok == 2 and rep.failed == 2
    man = pd.read_csv(tmp_path / "st" / "manifest.csv", keep_default_na=False)
    failed = man[man.status == "failed"].set_index("song_id")
    assert "0 bytes" in failed.loc["empty.wav", "error"]
    assert "cannot decode" in failed.loc["broken.mp3", "error"]
    # a fixed file is retried on the next run
    os.remove(src / "empty.wav")
    os.symlink(corpus / "audio" / "song_00002.wav", src / "empty.wav")
    rep = extract(src, tmp_path / "st", progress=False)
    assert rep.new == 1 and rep.skipped == 2 and rep.ok == 3 and rep.failed == 1


def test_parallel_equals_serial(tmp_path, corpus, store):
    extract(corpus / "labels.csv", tmp_path / "par", workers=2, progress=False)
    a = np.load(store / "mel_mid30.npy")
    b = np.load(tmp_path / "par" / "mel_mid30.npy")
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_kill_and_resume_loses_nothing(tmp_path, corpus, store, sig):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "hitrank", "extract", str(corpus / "labels.csv"), "--out", str(out), "-q"]
    proc = subprocess.Popen(cmd)
    deadline = time.time() + 60
    journal = out / "journal.jsonl"
    # wait until a few songs are done, then kill at a random moment
    while time.time() < deadline:
        if journal.exists() and journal.read_text().count('"ok"') >= 3:
            break
        time.sleep(0.02)
    time.sleep(np.random.default_rng().uniform(0, 0.3))
    proc.send_signal(sig)
    proc.wait(30)
    subprocess.run(cmd, check=False, timeout=300)
    a = np.load(store / "mel_mid30.npy")
    b = np.load(out / "mel_mid30.npy")
    np.testing.assert_array_equal(a, b)
    ma = pd.read_csv(store / "manifest.csv")
    mb = pd.read_csv(out / "manifest.csv")
    pd.testing.assert_frame_equal(ma, mb)


def test_store_grows_without_touching_old_rows(tmp_path):
    """A store that grows past its first size (new songs in a later run) keeps every row."""
    params = FeatureParams()
    rng = np.random.default_rng(0)
    shape = (params.n_mels, params.n_frames)
    first = {f"a{i}": rng.normal(size=shape).astype(np.float16) for i in range(5)}
    second = {f"b{i}": rng.normal(size=shape).astype(np.float16) for i in range(300)}
    info = {"seg_start": 0.0, "seg_end": 30.0, "duration": 60.0, "padded": False}
    for batch in (first, second):
        with FeatureStore.create_or_open(tmp_path, params) as st:
            st.plan([(k, f"/x/{k}.wav", "", 1.0) for k in batch])
            for k, v in batch.items():
                st.write(k, v, info)
    st = FeatureStore.open(tmp_path)
    ids = ["b299", "a3", "b0", "a0"]  # any order, rows far apart
    got = st.load(ids)
    for k, g in zip(ids, got, strict=True):
        assert np.array_equal(g, {**first, **second}[k])
    assert np.load(tmp_path / "mel_mid30.npy", mmap_mode="r").shape[0] == 305


def test_the_store_records_its_manifest_columns(tmp_path):
    """params.json names the segment method's manifest columns; a store written before it did
    takes them from its manifest.csv; a store refuses another method's columns."""
    params = FeatureParams(segment="hl30")
    info = {"seg_start": 0.0, "seg_end": 30.0, "duration": 60.0, "padded": False,
            "method": "fallback", "curve": "[1.0]"}
    with FeatureStore.create_or_open(tmp_path, params, ("method", "curve")) as st:
        st.plan([("a", "/x/a.wav", "", 1.0)])
        st.write("a", np.zeros(st.row_shape, np.float16), info)
    meta = json.loads((tmp_path / "params.json").read_text())
    assert meta["manifest_fields"] == ["method", "curve"]
    assert list(pd.read_csv(tmp_path / "manifest.csv").columns[-2:]) == ["method", "curve"]
    with pytest.raises(StoreError, match=r"manifest columns \['method', 'curve'\].*not \['why'\]"):
        FeatureStore.create_or_open(tmp_path, params, ("why",))
    del meta["manifest_fields"]  # as an older hitrank wrote it
    (tmp_path / "params.json").write_text(json.dumps(meta))
    older = FeatureStore.open(tmp_path)
    assert older.fields == ("method", "curve") and older.manifest.curve.tolist() == ["[1.0]"]


def test_full_disk_stops_cleanly_and_resumes(tmp_path, corpus, store, monkeypatch, capsys):
    """A write that fails (full disk) ends the run with one line and exit code 2; the songs
    written before are kept, and the next run finishes a store equal to an uninterrupted one."""
    import errno

    import hitrank.store as store_mod
    from hitrank.cli import main

    real, calls = store_mod._pwrite, {"n": 0}

    def flaky(fd, data, offset, path):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(fd, data, offset, path)

    monkeypatch.setattr(store_mod, "_pwrite", flaky)
    out = tmp_path / "st"
    assert main(["extract", str(corpus / "labels.csv"), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no space left on the device; free some space" in err and "resume" in err and "\n" not in err
    man = pd.read_csv(out / "manifest.csv")
    assert (man.status == "ok").sum() == 5 and len(man) == 24  # nothing lost, the rest pending
    monkeypatch.setattr(store_mod, "_pwrite", real)
    assert main(["extract", str(corpus / "labels.csv"), "--out", str(out), "-q"]) == 0
    np.testing.assert_array_equal(np.load(store / "mel_mid30.npy"), np.load(out / "mel_mid30.npy"))
    pd.testing.assert_frame_equal(pd.read_csv(store / "manifest.csv"), pd.read_csv(out / "manifest.csv"))


def test_a_file_replaced_at_the_same_path_is_extracted_again(tmp_path):
    """The store keeps each file's size and modification time: a recording replaced in place
    is not scored from the old one's features; unchanged files are skipped; a store written
    before the stamp keeps its features."""
    import shutil

    import soundfile as sf

    folder, sr = tmp_path / "songs", 22050
    folder.mkdir()
    t = np.arange(12 * sr) / sr
    for i, f0 in enumerate((220.0, 880.0, 3520.0)):
        sf.write(folder / f"s{i}.wav", (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), sr)
    store = tmp_path / "store"
    assert extract(folder, store, progress=False).new == 3
    rep = extract(folder, store, progress=False)
    assert rep.new == 0 and rep.skipped == 3
    first = FeatureStore.open(store)
    before = dict(zip(first.manifest.song_id, first.load(list(first.manifest.song_id)), strict=True))
    shutil.copyfile(folder / "s2.wav", folder / "s0.wav")  # another recording, same path
    os.utime(folder / "s0.wav", ns=(time.time_ns(), time.time_ns() + 10**9))
    rep = extract(folder, store, progress=False)
    assert rep.new == 1 and rep.skipped == 2
    st = FeatureStore.open(store)
    np.testing.assert_array_equal(st.load(["s0.wav"])[0], before["s2.wav"])
    assert not np.array_equal(before["s0.wav"], before["s2.wav"])
    labels = tmp_path / "labels.csv"  # audio that cannot be read for a while (a drive not mounted) keeps its features
    labels.write_text("song_id,path,hit_score\n" + "".join(f"s{i}.wav,{folder / f's{i}.wav'},1\n" for i in range(3)))
    assert extract(labels, store, progress=False, allow_outside=True).skipped == 3
    folder.rename(tmp_path / "away")
    rep = extract(labels, store, progress=False, allow_outside=True)
    assert rep.skipped == 3 and not rep.failures
    (tmp_path / "away").rename(folder)
    assert extract(labels, store, progress=False, allow_outside=True).skipped == 3
    # a row now naming another path that cannot be read: not the file extracted, so it fails, named
    moved = tmp_path / "moved.csv"
    moved.write_text(labels.read_text().replace(str(folder / "s1.wav"), str(tmp_path / "nowhere" / "s1.wav")))
    rep = extract(moved, store, progress=False, allow_outside=True)
    assert rep.skipped == 2 and [f[0] for f in rep.failures] == ["s1.wav"]
    assert "does not exist" in str(rep.failures[0][2])
    assert extract(labels, store, progress=False, allow_outside=True).new == 1  # back at its path: extracted
    journal = store / "journal.jsonl"  # as an older hitrank wrote it: no stamp
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    journal.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "stamp"}) + "\n" for r in lines))
    shutil.copyfile(folder / "s1.wav", folder / "s0.wav")
    assert extract(folder, store, progress=False).new == 0  # nothing to compare with: kept
    assert extract(folder, store, progress=False).new == 0  # and the stamp is recorded now


def test_extraction_without_a_progress_bar_logs_its_progress(tmp_path, caplog):
    """A batch job's log (stderr to a file: no progress bar) says what extraction is doing."""
    import soundfile as sf

    caplog.set_level("INFO", logger="hitrank.extract")
    sr = 22050
    for i in range(12):
        sf.write(tmp_path / f"s{i:02d}.wav", 0.2 * np.sin(2 * np.pi * (200 + 20 * i) * np.arange(sr) / sr), sr)
    rep = extract(tmp_path, tmp_path / "store", FeatureParams(), progress=False)
    assert rep.new == 12
    lines = [r.message for r in caplog.records if r.name == "hitrank.extract"]
    assert lines == [f"extracting 12 songs into {tmp_path / 'store'}", "extracted 10 of 12 songs (0 of them failed)",
                     "extracted 12 of 12 songs (0 of them failed)"]
