"""Catalogue-sized ranking jobs: failed files kept in the CSV with their reason, `rank --since`
ranks only what is new and merges, and a killed rank resumes without recomputing finished
songs (here at a small size; docs/ranking.md states the 10,000-song measurement)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from hitrank.cli import main
from hitrank.errors import HitrankError, LabelsError
from hitrank.ranking_table import (
    check_provenance,
    merge_rankings,
    ranking_with_failures,
    read_previous,
)
from hitrank.store import FeatureStore


def _folder_of(songs, folder):
    """``folder`` (new) holding copies of the audio files ``songs``."""
    folder.mkdir()
    for p in songs:
        shutil.copy(p, folder / p.name)
    return folder


def test_failures_stay_in_the_csv_and_since_ranks_only_new_songs(quick_run, corpus, tmp_path, capsys, caplog):
    audio = sorted((corpus / "audio").glob("*.wav"))
    folder = _folder_of(audio[:6], tmp_path / "songs")
    (folder / "broken.mp3").write_bytes(b"not an mp3 at all")
    first = tmp_path / "first.csv"
    cache = tmp_path / "cache"
    assert main(["rank", str(folder), "--model", str(quick_run), "--out", str(first), "-q", "--nearest", "0",
                 "--cache", str(cache)]) == 1  # partial: one file failed
    capsys.readouterr()
    # copies of the songs the model learned from, under other paths: their scores are in-sample, said
    assert "6 of the 6 ranked songs are byte-for-byte copies of songs m learned from" in caplog.text
    t = pd.read_csv(first, keep_default_na=False)
    assert len(t) == 7 and t["error"].iloc[:6].eq("").all()
    bad = t.iloc[6]
    assert bad["song_id"] == "broken.mp3" and bad["error"] and bad["score"] == "" and bad["rank"] == ""
    # the folder changes: two songs added, one removed, the broken file mended
    for p in audio[6:8]:
        shutil.copy(p, folder / p.name)
    (folder / audio[0].name).unlink()
    shutil.copy(audio[9], folder / "broken.mp3.wav")
    (folder / "broken.mp3").unlink()
    second = tmp_path / "second.csv"
    assert main(["rank", str(folder), "--model", str(quick_run), "--out", str(second), "--since", str(first),
                 "--nearest", "0", "--cache", str(cache), "--html", str(tmp_path / "second.html")]) == 0
    printed = capsys.readouterr().out
    assert "5 songs kept from it, 3 new, 1 no longer in the folder" in printed
    t2 = pd.read_csv(second)
    added = [audio[6].name, audio[7].name, "broken.mp3.wav"]  # where the new songs landed, best first
    rows = t2[t2.song_id.isin(added)]
    assert "new songs: " + ", ".join(f"#{r} {s}" for r, s in zip(rows["rank"], rows.song_id, strict=True)) + "\n" in printed
    page = (tmp_path / "second.html").read_text()  # the report badges them too
    assert page.count('class="flag new"') == 3 and "3 song(s) ranked in this run (marked new)" in page
    assert all(f'{sid} <span class="flag new"' in page for sid in added)
    assert sorted(t2.song_id) == sorted(p.name for p in folder.iterdir())
    assert list(t2["rank"]) == list(range(1, 9)) and t2.score.is_monotonic_decreasing
    # kept rows are the previous ones, not recomputed
    old = pd.read_csv(first).set_index("song_id")
    for sid in (p.name for p in audio[1:6]):
        assert t2.set_index("song_id").loc[sid, "score"] == pytest.approx(old.loc[sid, "score"])
    # the same ranking as ranking the whole folder again (same model, cached features)
    full = tmp_path / "full.csv"
    assert main(["rank", str(folder), "--model", str(quick_run), "--out", str(full), "-q", "--nearest", "0",
                 "--cache", str(cache)]) == 0
    assert list(pd.read_csv(full).song_id) == list(t2.song_id)
    # --since a ranking that holds every song: nothing new, the context of the report kept
    # (before: no feature store for the log-mel strips, no reference for the percentiles)
    from hitrank.commands import rank

    again, _ = rank(folder, quick_run, cache=cache, since=full, nearest=0, progress=False)
    assert list(again.song_id) == list(t2.song_id) and again.attrs["since"]["new"] == 0
    assert again.attrs["since"]["new_songs"] == []
    assert again.attrs["store"] == str(cache) and again.attrs["reference"]
    # ... and a previous CSV that lost a column every ranking has is refused (before: merged without it)
    from hitrank.rank import RANKING_COLUMNS

    assert set(RANKING_COLUMNS) <= set(pd.read_csv(full).columns)
    pd.read_csv(full, keep_default_na=False).drop(columns=["flags"]).to_csv(tmp_path / "edited.csv", index=False)
    with pytest.raises(LabelsError, match=r"lacks \['flags'\], which every ranking of this model has"):
        rank(folder, quick_run, cache=cache, since=tmp_path / "edited.csv", nearest=0, progress=False)
    # a previous CSV holding only its header (every row deleted): said, and everything ranked anew
    (tmp_path / "header.csv").write_text(first.read_text().splitlines()[0] + "\n")
    capsys.readouterr()
    assert main(["rank", str(folder), "--model", str(quick_run), "--out", str(tmp_path / "third.csv"), "--since",
                 str(tmp_path / "header.csv"), "--nearest", "0", "--cache", str(cache), "--json"]) == 0
    assert "holds no ranked song: every song is ranked anew" in caplog.text
    doc = json.loads(capsys.readouterr().out)  # --json says which songs are new, best first
    assert doc["since"] == {"kept": 0, "new": 8, "dropped": 0, "new_songs": [r["song_id"] for r in doc["ranking"]]}


def test_since_refuses_a_file_that_is_not_a_ranking(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("song_id,path,hit_score\na,a.wav,1\n")
    with pytest.raises(LabelsError, match="not a ranking CSV"):
        read_previous(bad)
    bad.write_text("rank,song_id,path,score\n1,a,a.wav,high\n")
    with pytest.raises(LabelsError, match="without a finite numeric score"):
        read_previous(bad)
    with pytest.raises(LabelsError, match="does not exist"):
        read_previous(tmp_path / "none.csv")
    for body, reason in (("1,a,a.wav,inf,50\n", "without a finite numeric score"),
                         ("1,a,a.wav,0.5,abc\n", "column 'percentile' holds text where numbers belong"),
                         ("1,a,a.wav,0.5,50\n2,a,a.wav,0.5,50\n", r"song\(s\) \['a'\] appear in more than one row")):
        bad.write_text("rank,song_id,path,score,percentile\n" + body)  # edited by hand
        with pytest.raises(LabelsError, match=reason):
            read_previous(bad)
    cut = tmp_path / "cut.csv"  # a ranking CSV cut short in its last row: the model cell is lost
    cut.write_text("rank,song_id,path,score,model,options\n1,a,a.wav,0.5,runs/x#abc,\n2,b,b.wav,0.4\n")
    with pytest.raises(LabelsError, match=r"1 ranked row\(s\) have an empty 'model' cell \(e.g. \['b'\]\).*cut short"):
        check_provenance(read_previous(cut), {"model": "runs/x#abc", "options": ""}, "'cut.csv'")
    cut.write_text("rank,song_id,path,score,model,options\n1,a,a.wav,0.5,runs/x#abc,\n")  # ranked with the defaults
    with pytest.raises(LabelsError, match=r"with other options \(the defaults; now 'nearest=3'\)"):
        check_provenance(read_previous(cut), {"model": "runs/x#abc", "options": "nearest=3"}, "'cut.csv'")


def test_since_refuses_hand_edited_values(tmp_path):
    bad = tmp_path / "edited.csv"
    for body, reason in (("1,a,a.wav,0.5,inf,False\n", "column 'percentile' holds an infinite number"),
                         ("1,a,a.wav,0.5,250,False\n", "column 'percentile' holds a percentile outside 0-100"),
                         ("1,a,a.wav,0.5,50,maybe\n2,b,b.wav,0.4,40,False\n",
                          r"column 'silent' holds values other than True/False \(songs \['a'\]")):
        bad.write_text("rank,song_id,path,score,percentile,silent\n" + body)
        with pytest.raises(LabelsError, match=reason):
            read_previous(bad)


def test_outputs_write_through_links_and_pipes_and_spare_the_since_csv(tmp_path):
    from hitrank.commands import check_outputs
    from hitrank.fileio import atomic_write_text, copies_of

    real, link = tmp_path / "real.csv", tmp_path / "link.csv"
    real.write_text("old")
    link.symlink_to(real)
    atomic_write_text(link, "new")  # written through the link, which stays a link
    assert link.is_symlink() and real.read_text() == "new"
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    atomic_write_text(fifo, "rank,song_id\n")  # a pipe is written into, not replaced by a file
    reader.join(timeout=30)
    assert got == ["rank,song_id\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    # the report may not replace the --since ranking (--out may: an update in place), nor be a pipe
    check_outputs({}, real, None, since=real)
    with pytest.raises(HitrankError, match=r"--html .*pipe.csv' is not a regular file"):
        check_outputs({}, None, fifo)
    dangling = tmp_path / "dangling.csv"  # a link to a file in a folder still to be made: made before any work
    dangling.symlink_to(tmp_path / "later" / "out.csv")
    check_outputs({}, dangling, None)
    assert (tmp_path / "later").is_dir()
    with pytest.raises(HitrankError, match=r"--html .*link.csv' is the --since ranking"):
        check_outputs({}, None, link, since=real)
    # copies are found by their bytes; a file of the same size and other bytes is no copy
    (tmp_path / "a.wav").write_bytes(b"abcd")
    (tmp_path / "copy.wav").write_bytes(b"abcd")
    (tmp_path / "other.wav").write_bytes(b"abce")
    found = copies_of([tmp_path / "copy.wav", tmp_path / "other.wav", tmp_path / "gone.wav"], [tmp_path / "a.wav"])
    assert found == {str(tmp_path / "copy.wav"): str(tmp_path / "a.wav")}


def test_merge_puts_silent_songs_last():
    prev = pd.DataFrame({"rank": [1, 2], "song_id": ["a", "b"], "path": ["a", "b"], "score": [0.5, 0.1],
                         "silent": [False, True]})
    new = pd.DataFrame({"rank": [1], "song_id": ["c"], "path": ["c"], "score": [0.2], "silent": [False]})
    merged, counts = merge_rankings(prev, new, {"a", "b", "c"})
    assert list(merged.song_id) == ["a", "c", "b"] and list(merged["rank"]) == [1, 2, 3]
    assert counts == {"kept": 2, "new": 1, "dropped": 0}


def test_a_killed_rank_resumes_without_recomputing(quick_run, corpus, tmp_path):
    """Many links to a few songs: the rank is killed mid-extraction, then run again; the second
    run extracts only the songs the first did not finish."""
    audio = sorted((corpus / "audio").glob("*.wav"))
    folder = tmp_path / "catalogue"
    folder.mkdir()
    for i in range(160):
        os.symlink(audio[i % len(audio)], folder / f"song {i:04d}.wav")
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "hitrank", "rank", str(folder), "--model", str(quick_run), "--cache", str(cache),
           "--nearest", "0", "--out", str(tmp_path / "r.csv")]
    proc = subprocess.Popen([*cmd, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            done = int((FeatureStore.open(cache).manifest.status == "ok").sum())
        except Exception:  # the store is being created
            continue
        if done >= 20:
            break
    if proc.poll() is not None:
        pytest.skip("the rank finished before it could be killed (a fast machine)")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = int((FeatureStore.open(cache).manifest.status == "ok").sum())
    assert 20 <= before < 160
    res = subprocess.run([*cmd, "-v"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{before} of 160 songs already extracted; {160 - before} to go" in res.stderr
    assert len(pd.read_csv(tmp_path / "r.csv")) == 160


def test_since_ranks_again_songs_of_another_folder_and_refuses_other_options(quick_run, corpus, tmp_path, capsys):
    """A previous CSV of another folder names the same song ids for other files: those are
    ranked again, not kept. A CSV made with other options (no --curve) is refused."""
    audio = sorted((corpus / "audio").glob("*.wav"))
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for i in range(3):
        shutil.copy(audio[i], a / f"s{i}.wav")
        shutil.copy(audio[10 + i], b / f"s{i}.wav")  # same names, other recordings
    cache = tmp_path / "cache"
    first = tmp_path / "a.csv"
    assert main(["rank", str(a), "--model", str(quick_run), "--out", str(first), "-q", "--nearest", "0",
                 "--cache", str(cache)]) == 0
    merged = tmp_path / "b.csv"
    assert main(["rank", str(b), "--model", str(quick_run), "--out", str(merged), "--since", str(first), "-q",
                 "--nearest", "0", "--cache", str(tmp_path / "cache_b")]) == 0
    t = pd.read_csv(merged)
    assert sorted(t.path) == sorted(str(p) for p in b.iterdir())  # every row is b's file
    alone = tmp_path / "b_alone.csv"
    assert main(["rank", str(b), "--model", str(quick_run), "--out", str(alone), "-q", "--nearest", "0",
                 "--cache", str(tmp_path / "cache_b")]) == 0
    assert list(pd.read_csv(alone).song_id) == list(t.song_id)
    shutil.copy(audio[5], a / "new.wav")
    capsys.readouterr()
    assert main(["rank", str(a), "--model", str(quick_run), "--curve", "--since", str(first), "-q", "--nearest", "0",
                 "--cache", str(cache)]) == 2
    err = capsys.readouterr().err
    assert "was ranked with other options" in err and "'curve" in err


def test_since_refuses_another_model_before_ranking(quick_run, corpus, tmp_path, capsys, monkeypatch):
    """Every row names its model by fingerprint; a previous CSV of another model is refused
    even when no song is new (nothing would be ranked to compare columns with), and the same
    model under another spelling of its path is accepted."""
    audio = sorted((corpus / "audio").glob("*.wav"))
    folder = _folder_of(audio[:3], tmp_path / "songs")
    first, cache = tmp_path / "first.csv", tmp_path / "cache"
    assert main(["rank", str(folder), "--model", str(quick_run), "--out", str(first), "-q", "--nearest", "0",
                 "--cache", str(cache)]) == 0
    t = pd.read_csv(first, keep_default_na=False)
    assert t["model"].str.fullmatch(r".+#[0-9a-f]{12}").all() and t["model"].nunique() == 1
    assert t["options"].eq("nearest=0").all()
    monkeypatch.chdir(quick_run.parent)  # the same model named by a relative path
    again = tmp_path / "again.csv"
    assert main(["rank", str(folder), "--model", quick_run.name, "--out", str(again), "--since", str(first),
                 "-q", "--nearest", "0", "--cache", str(cache)]) == 0
    # options spelled out at their defaults are the same options
    plain = tmp_path / "plain.csv"
    assert main(["rank", str(folder), "--model", str(quick_run), "--out", str(plain), "-q",
                 "--cache", str(cache)]) == 0
    assert pd.read_csv(plain, keep_default_na=False)["options"].eq("").all()
    assert main(["rank", str(folder), "--model", str(quick_run), "--out", str(tmp_path / "p2.csv"), "-q",
                 "--nearest", "5", "--embedding", "model", "--since", str(plain), "--cache", str(cache)]) == 0
    other = t.assign(model=t["model"].str.replace(r"#.*", "#000000000000", regex=True))
    other.to_csv(tmp_path / "other.csv", index=False)
    capsys.readouterr()
    assert main(["rank", str(folder), "--model", str(quick_run), "--out", str(tmp_path / "x.csv"), "--since",
                 str(tmp_path / "other.csv"), "-q", "--nearest", "0", "--cache", str(cache)]) == 2
    assert "was ranked with another model" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    t.drop(columns=["model", "options"]).to_csv(tmp_path / "old.csv", index=False)
    assert main(["rank", str(folder), "--model", str(quick_run), "--since", str(tmp_path / "old.csv"), "-q",
                 "--nearest", "0", "--cache", str(cache)]) == 2
    assert "written by an older hitrank" in capsys.readouterr().err


def test_read_previous_restores_types(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("rank,song_id,path,score,silent,unstable,nearest_similarity,title\n"
                 "1,0001,a.wav,0.5,False,True,0.9000,007\n2,0002,b.wav,0.1,False,,0.8000,\n")
    t = read_previous(f)
    assert t.song_id.tolist() == ["0001", "0002"] and t.title.tolist() == ["007", ""]  # names stay text
    assert t.silent.dtype == bool and str(t.unstable.dtype) == "boolean" and t.unstable.isna().tolist() == [False, True]
    assert t.nearest_similarity.tolist() == ["0.9000", "0.8000"] and t.score.dtype.kind == "f"


def test_allow_outside_reaches_every_command_that_reads_labels(quick_run, corpus, tmp_path, capsys):
    """A labels CSV whose paths leave its folder: refused by `rank` (naming the flag), ranked
    with `--allow-outside`; the setting does not outlive the command."""
    from hitrank.corpus import ALLOW_OUTSIDE_ENV

    labels = pd.read_csv(corpus / "labels.csv").head(4)
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    labels.assign(path=[str(corpus / p) for p in labels.path]).to_csv(sub / "labels.csv", index=False)
    cmd = ["rank", str(sub / "labels.csv"), "--model", str(quick_run), "-q", "--nearest", "0",
           "--out", str(tmp_path / "r.csv"), "--cache", str(tmp_path / "c")]
    assert main(cmd) == 1
    t = pd.read_csv(tmp_path / "r.csv", keep_default_na=False)
    assert t["error"].str.contains("--allow-outside").all() and len(t) == 4
    assert main([*cmd, "--allow-outside"]) == 0
    assert len(pd.read_csv(tmp_path / "r.csv")) == 4 and ALLOW_OUTSIDE_ENV not in os.environ
    from hitrank.cli import get_parser

    for command in (["cv", "--config", "real/ridge"], ["train", "--config", "real/ridge"],
                    ["learning-curve", "--config", "real/ridge", "--sizes", "2"]):  # parsed, not run
        args = get_parser().parse_args([*command, "--labels", "x.csv", "--out", "o", "--allow-outside"])
        assert args.allow_outside is True
    args = get_parser().parse_args(["similar", "x.wav", "--reference", "r.csv", "--allow-outside"])
    assert args.allow_outside is True


def test_rank_refuses_an_empty_folder_and_creates_the_out_folder(quick_run, corpus, tmp_path, capsys, caplog):
    empty, text_only = tmp_path / "empty", tmp_path / "text"
    empty.mkdir()
    text_only.mkdir()
    (text_only / "notes.txt").write_text("no audio here")
    for folder in (empty, text_only):
        assert main(["rank", str(folder), "--model", str(quick_run), "-q", "--out", str(tmp_path / "x.csv")]) == 2
        assert "no audio files found" in capsys.readouterr().err
        # so do extract and descriptors (they made an empty store / folder and exited 0 before)
        for command, doing in (("extract", "extract"), ("descriptors", "describe")):
            assert main([command, str(folder), "--out", str(tmp_path / command), "-q"]) == 2
            assert (f"{str(folder)!r}: no audio files found (looked for .wav, "
                    in capsys.readouterr().err.split(f"; nothing to {doing}")[0])
            assert not (tmp_path / command).exists()
    assert not (tmp_path / "x.csv").exists()
    song = sorted((corpus / "audio").glob("*.wav"))[0]
    # percentiles against a catalogue of 24 songs: no word of the run's few validation songs
    # (the reference songs' own ranking computed and warned about them before)
    caplog.set_level("WARNING", logger="hitrank.reference")
    assert main(["rank", str(song), "--model", str(quick_run), "--reference", str(corpus / "audio"),
                 "--nearest", "0", "--cache", str(tmp_path / "c_ref")]) == 0
    assert "validation songs" not in caplog.text
    assert main(["rank", str(song), "--model", str(quick_run), "-q", "--reference", str(empty)]) == 2
    assert f"{str(empty)!r}: no audio files found" in capsys.readouterr().err.split("; nothing to compare with")[0]
    (text_only / "Song One.m4a").write_bytes(b"\0\0\0 ftypM4A " + bytes(500))
    (text_only / "two.WMA").write_bytes(bytes(500))
    # before: "no audio files found", the two files never named
    assert main(["rank", str(text_only), "--model", str(quick_run), "-q", "--out", str(tmp_path / "x.csv"),
                 "--cache", str(tmp_path / "c0")]) == 1
    err = capsys.readouterr().err
    for name, suffix in (("Song One.m4a", ".m4a"), ("two.WMA", ".wma")):
        assert (f"{str(text_only / name)!r}: the {suffix} format cannot be decoded here (libsndfile reads WAV, FLAC, "
                f"OGG/Opus, MP3, AIFF); convert the file, e.g. `ffmpeg -i IN{suffix} OUT.flac`") in err
    assert list(pd.read_csv(tmp_path / "x.csv").song_id) == ["Song One.m4a", "two.WMA"]  # failed rows, kept
    (tmp_path / "x.csv").unlink()
    song = sorted((corpus / "audio").glob("*.wav"))[0]
    out = tmp_path / "new" / "deeper" / "r.csv"  # folders that do not exist yet
    assert main(["rank", str(song), "--model", str(quick_run), "-q", "--nearest", "0", "--out", str(out),
                 "--cache", str(tmp_path / "c")]) == 0
    assert len(pd.read_csv(out)) == 1
    assert main(["rank", str(song), "--model", str(quick_run), "-q", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["rank", str(song), "--model", str(quick_run), "-q", "--html", str(tmp_path / "new"),
                 "--cache", str(tmp_path / "c2")]) == 2  # before any song is ranked
    assert "--html" in capsys.readouterr().err and not (tmp_path / "c2").exists()


def test_a_file_name_that_is_not_utf8_fails_alone_and_outputs_never_replace_inputs(quick_run, corpus, tmp_path,
                                                                                    capsys):
    import soundfile as sf

    folder = tmp_path / "songs"
    folder.mkdir()
    song = sorted((corpus / "audio").glob("*.wav"))[0]
    shutil.copy(song, folder / "ok.wav")
    shutil.copy(song, os.fsdecode(bytes(folder) + b"/caf\xe9.wav"))  # written on a Latin-1 system
    out, cache = tmp_path / "r.csv", tmp_path / "cache"
    args = ["rank", str(folder), "--model", str(quick_run), "-q", "--nearest", "0", "--cache", str(cache)]
    assert main([*args, "--out", str(out)]) == 1
    table = pd.read_csv(out)
    assert table.song_id.tolist() == ["ok.wav", "caf\ufffd.wav"] and "not valid UTF-8" in table.error.iloc[1]
    os.rename(os.fsdecode(bytes(folder) + b"/caf\xe9.wav"), folder / "cafe.wav")
    assert main([*args, "--out", str(out)]) == 0  # the cache holds nothing of the bad name
    capsys.readouterr()
    labels = tmp_path / "labels.csv"
    labels.write_text("song_id,path,hit_score\na,songs/ok.wav,1\n")
    for extra, reason in ((["--out", str(labels)], "is the labels CSV ranked"),
                          (["--html", str(folder / "ok.wav")], "is an audio file"),
                          (["--out", str(out), "--html", str(out)], "--out and --html are both")):
        assert main(["rank", str(labels), "--model", str(quick_run), "-q", *extra]) == 2
        assert reason in capsys.readouterr().err
    assert labels.read_text().startswith("song_id") and sf.info(folder / "ok.wav").frames > 0


def test_odd_names_stay_on_one_line_links_are_named_and_top_says_what_it_cut(quick_run, corpus, tmp_path, capsys,
                                                                           caplog):
    songs = sorted((corpus / "audio").glob("*.wav"))
    folder = tmp_path / "odd"
    folder.mkdir()
    shutil.copy(songs[0], folder / "two\nlines\t.wav")  # before: broke the terminal table in two
    shutil.copy(songs[1], folder / "b.wav")
    os.symlink(folder / "b.wav", folder / "b again.wav")  # before: ranked twice without a word
    assert main(["rank", str(folder), "--model", str(quick_run), "--top", "2", "--nearest", "0",
                 "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "r.csv")]) == 0
    out = capsys.readouterr().out
    assert "1 file(s) appear under more than one name (links: 'b again.wav' = 'b.wav'); each name is " \
           "processed and ranked as a song of its own" in caplog.text
    table = out.splitlines()
    assert table[0].startswith("rank") and len(table[1:3]) == 2
    assert all(line.split()[0] in "12" for line in table[1:3])  # one line per song
    assert "(the first 2 of 3 songs; --top 0 prints all)" in out
    assert "two\nlines\t.wav" in set(pd.read_csv(tmp_path / "r.csv").song_id)  # the CSV keeps the name
    assert main(["rank", str(folder), "--model", str(quick_run), "--top", "0", "--nearest", "0",
                 "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "two\\nlines\\t.wav" in out and "the first" not in out


def test_names_from_tags_are_never_run_as_spreadsheet_formulas(tmp_path):
    ranking = pd.DataFrame({"rank": [1, 2], "song_id": ["-a.wav", "b.wav"], "path": ["/x/-a.wav", "/x/b.wav"],
                            "score": [0.5, 0.1], "title": ['=HYPERLINK("http://x.invalid")', "Plain"],
                            "artist": ["@me", "-"], "nearest_title": ["+1;x", ""]})
    table = ranking_with_failures(ranking, [("c.wav", "/x/c.wav", "file is 0 bytes")])
    assert list(table.title[:2]) == ['\'=HYPERLINK("http://x.invalid")', "Plain"]
    assert list(table.artist[:2]) == ["'@me", "'-"] and list(table.nearest_title[:2]) == ["'+1;x", ""]
    # file names are anyone's too (demos from strangers): ids, and paths that start like a formula
    assert list(table.song_id) == ["'-a.wav", "b.wav", "c.wav"] and table.path[0] == "/x/-a.wav"
    assert ranking.title[0].startswith("=")  # the ranking itself (JSON, HTML) keeps the name
    table.to_csv(tmp_path / "r.csv", index=False)
    back = read_previous(tmp_path / "r.csv")  # --since: kept rows hold the names as they were
    assert list(back.title) == list(ranking.title) and list(back.artist) == list(ranking.artist)
    assert list(back.nearest_title) == list(ranking.nearest_title) and list(back.song_id) == list(ranking.song_id)
    odd = pd.DataFrame({"rank": [1, 2, 3], "song_id": ["'=x.wav", "=x.wav", "'plain.wav"], "path": ["/a"] * 3,
                        "score": [0.3, 0.2, 0.1]})
    ranking_with_failures(odd, []).to_csv(tmp_path / "odd.csv", index=False)
    assert list(read_previous(tmp_path / "odd.csv").song_id) == list(odd.song_id)  # a name's own apostrophe kept
    fit = ranking_with_failures(pd.DataFrame({"rank": [1], "id": ["=cmd.wav"], "fit": [0.1]}),
                                [("@x.wav", "=rel/@x.wav", "file is 0 bytes")], "id")
    assert list(fit["id"]) == ["'=cmd.wav", "'@x.wav"] and fit.path[1] == "'=rel/@x.wav"


def test_options_that_do_not_apply_are_named(quick_run, corpus, tmp_path, caplog):
    songs = sorted((corpus / "audio").glob("*.wav"))
    folder = _folder_of(songs[:2], tmp_path / "two")
    assert main(["rank", str(folder), "--model", str(quick_run), "--highlighter", str(songs[0]),
                 "--reference", str(folder), "--nearest", "5", "--cache", str(tmp_path / "c")]) == 0
    # before: both were ignored without a word
    assert f"--highlighter {str(songs[0])!r} is not used: the model's mid30 segments need none" in caplog.text
    assert "the 2 songs of two: 2 song(s), fewer than the 5 nearest asked for (--nearest); each song lists all " \
           "of them" in caplog.text
