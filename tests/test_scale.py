"""Scale-out engines: Ray extraction/ranking and torchrun (DDP, fold-parallel) training.

The equality tests start a local Ray instance or two gloo processes (tens of seconds each):
they are marked ``scale`` and run by the README's test command as a second pytest call
(``python -m pytest -m scale``), so the default suite stays fast.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hitrank.engines import get_engine
from hitrank.errors import HitrankError
from hitrank.extract import extract
from hitrank.store import FeatureStore

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_COLUMNS = ["song_id", "row", "seg_start", "seg_end", "duration", "padded", "status"]


def _store_content(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    store = FeatureStore.open(path)
    man = store.manifest.sort_values("song_id").reset_index(drop=True)
    return man, store.load(list(man.song_id[man.status == "ok"]))


def test_unknown_engine_and_missing_ray_are_clear_errors(monkeypatch):
    with pytest.raises(HitrankError, match="engine='spark'"):
        get_engine("spark")
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(HitrankError, match=r"pip install -e '\.\[ray\]'"), get_engine("ray", 2):
        pass


#: a program that maps a trivial job over a local pool of two workers, the second of which is
#: slow to start: it is still starting when the batch is done (a rerun on finished work, where
#: one worker does it all)
SLOW_WORKER = """
import os, sys, time
if __name__ == "__mp_main__":  # a worker process starting: the second one here is slow
    try:
        os.close(os.open(os.environ["FIRST_WORKER"], os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        time.sleep(2)
from hitrank.engines import get_engine

def batch():
    with get_engine("local", 2) as run:
        return list(run(abs, list(range(-9, 0))))

if __name__ == "__main__":
    print(batch())
"""


def test_local_pool_joins_a_worker_still_starting(tmp_path):
    """The pool's workers are joined before the queues handed to them are released: a worker
    that started late found its semaphores gone (``SemLock._rebuild ... FileNotFoundError``)
    and printed a traceback after the command had finished."""
    (tmp_path / "slow_worker.py").write_text(SLOW_WORKER)
    res = subprocess.run([sys.executable, str(tmp_path / "slow_worker.py")], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "FIRST_WORKER": str(tmp_path / "first")})
    assert res.returncode == 0 and res.stdout.strip() == str(list(range(9, 0, -1))), res.stderr
    assert "Traceback" not in res.stderr, res.stderr


def test_local_pool_has_no_idle_workers_and_is_joined(monkeypatch):
    """No pool for a batch of one task, no more workers than tasks, and workers joined at the
    end of a batch (not when it stops on an error: running jobs are not waited for)."""
    made, joined = [], []

    class Pool:  # a stand-in ProcessPoolExecutor that maps here and records its use
        def __init__(self, workers, **kwargs):
            made.append(workers)

        def map(self, fn, jobs, chunksize):
            return map(fn, jobs)

        def shutdown(self, wait, cancel_futures):
            joined.append(wait)

    monkeypatch.setattr("hitrank.engines.ProcessPoolExecutor", Pool)
    with get_engine("local", 4) as run:
        assert list(run(abs, [-1, -2, -3])) == [1, 2, 3]  # one task of CHUNKSIZE jobs: here
    assert made == [] and joined == []
    with get_engine("local", 4) as run:
        assert list(run(abs, list(range(-9, 0)))) == list(range(9, 0, -1))  # three tasks
    assert made == [3] and joined == [True]
    with pytest.raises(ValueError), get_engine("local", 2) as run:
        for _ in run(abs, list(range(-9, 0)), chunksize=1):
            raise ValueError("the caller stops")
    assert made == [3, 2] and joined == [True, False]


def test_address_needs_the_ray_engine(corpus, tmp_path, capsys):
    from hitrank.cli import main

    assert main(["extract", str(corpus / "labels.csv"), "--out", str(tmp_path / "s"),
                 "--address", "auto", "-q"]) == 2
    assert "--address auto needs --engine ray" in capsys.readouterr().err


@pytest.mark.scale
def test_ray_store_equals_the_single_process_store(corpus, tmp_path):
    """Local Ray, 2 workers: the same store as one process, failures and resume included."""
    pytest.importorskip("ray")
    src = tmp_path / "src"
    shutil.copytree(corpus, src)
    (src / "audio" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (src / "audio" / "empty.mp3").write_bytes(b"")
    labels = pd.read_csv(src / "labels.csv")
    extra = pd.DataFrame({"song_id": ["broken", "empty"], "path": ["audio/broken.wav", "audio/empty.mp3"]})
    pd.concat([labels, extra]).to_csv(src / "labels.csv", index=False)

    one = extract(src / "labels.csv", tmp_path / "one", progress=False)
    # the Ray run is resumed: a first local run did half of the songs
    half = tmp_path / "half.csv"
    labels.iloc[:10].assign(path=lambda d: str(src) + "/" + d.path).to_csv(half, index=False)
    extract(half, tmp_path / "ray", progress=False, allow_outside=True)
    rep = extract(src / "labels.csv", tmp_path / "ray", progress=False, engine="ray", workers=2)
    assert rep.skipped == 10 and rep.new == len(labels) - 10 and rep.ok == len(labels)
    assert sorted(s for s, _, _ in rep.failures) == sorted(s for s, _, _ in one.failures) == ["broken", "empty"]
    man1, x1 = _store_content(tmp_path / "one")
    man2, x2 = _store_content(tmp_path / "ray")
    pd.testing.assert_frame_equal(man1[MANIFEST_COLUMNS], man2[MANIFEST_COLUMNS])
    assert x1.dtype == x2.dtype and np.array_equal(x1, x2)


@pytest.mark.scale
def test_rank_with_the_ray_engine(corpus, store, tmp_path, capsys):
    pytest.importorskip("ray")
    from hitrank.cli import main

    run = tmp_path / "run"
    assert main(["train", "--config", str(ROOT / "configs/table1/a_simple_cnn_mid30.yaml"),
                 "--store", str(store), "--out", str(run), "--set", "train.epochs=1", "-q"]) == 0
    capsys.readouterr()
    assert main(["rank", str(corpus / "audio"), "--model", str(run), "--json", "--engine", "ray",
                 "--workers", "2", "--cache", str(tmp_path / "cache"), "-q"]) == 0
    ray_rank = json.loads(capsys.readouterr().out)["ranking"]
    assert main(["rank", str(corpus / "audio"), "--model", str(run), "--json",
                 "--cache", str(tmp_path / "cache_local"), "-q"]) == 0
    local_rank = json.loads(capsys.readouterr().out)["ranking"]
    assert [r["song_id"] for r in ray_rank] == [r["song_id"] for r in local_rank]
    assert np.allclose([r["score"] for r in ray_rank], [r["score"] for r in local_rank], atol=1e-6)


def _torchrun(n: int, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "hitrank", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HITRANK_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


CV_ARGS = ["--config", "configs/table1/i_siamese_ab_hl30.yaml", "--folds", "4",
           "--set", "features.segment=mid30", "--set", "train.epochs=3", "--set", "pairs.w=[0.5]",
           "--set", "model.kwargs.scorer_kwargs.dropout=0", "--device", "cpu", "-q",
           "--set", "train.precision=fp32"]  # sum-order equality is a float32 property (bf16 rounds it away)

# Stated tolerance for "the same metrics": 2 gloo processes vs 1 process differ only in the
# order of floating-point sums (gradient all-reduce, thread counts), so predictions agree to
# about 1e-3 and the fold metrics (ranks of 2-3 top songs) are equal in practice; we allow
# 0.02 on each metric's mean and 1e-2 on every prediction.
METRIC_TOL, PRED_TOL = 0.02, 1e-2


@pytest.mark.scale
@pytest.mark.parametrize("mode", ["data", "folds"])
def test_torchrun_two_gloo_processes_match_one(store, tmp_path, mode):
    _torchrun(1, ["cv", "--store", str(store), "--out", str(tmp_path / "one"), *CV_ARGS], tmp_path)
    multi = _torchrun(2, ["cv", "--store", str(store), "--out", str(tmp_path / "two"), "--distribute", mode,
                          *CV_ARGS], tmp_path)
    assert "x 2 processes" in multi.stdout and multi.stdout.count("run folder:") == 1
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s2["folds"] == s1["folds"] == 4 and s2["processes"] == 2
    for k in ("ndcg", "kendall", "spearman", "spearman_all"):
        assert abs(s1[f"{k}_mean"] - s2[f"{k}_mean"]) <= METRIC_TOL, k
    p1 = pd.read_csv(tmp_path / "one" / "predictions.csv").sort_values("song_id")
    p2 = pd.read_csv(tmp_path / "two" / "predictions.csv").sort_values("song_id")
    assert list(p1.song_id) == list(p2.song_id)
    assert np.abs(p1.pred_z.to_numpy() - p2.pred_z.to_numpy()).max() <= PRED_TOL
    c1 = pd.read_csv(tmp_path / "one" / "curves.csv").sort_values(["fold", "epoch"])
    c2 = pd.read_csv(tmp_path / "two" / "curves.csv").sort_values(["fold", "epoch"])
    for col in ("train_loss", "val_loss"):  # losses are the whole batch's, not one slice's
        assert np.allclose(c1[col], c2[col], rtol=1e-2), col


@pytest.mark.scale
def test_torchrun_train_writes_one_model(store, tmp_path):
    out = _torchrun(2, ["train", "--store", str(store), "--out", str(tmp_path / "m"), *CV_ARGS], tmp_path)
    assert out.stdout.count("trained ") == 1
    assert (tmp_path / "m" / "model.pt").is_file() and not (tmp_path / "m" / "resume").exists()


def test_ranking_in_chunks_equals_ranking_at_once(corpus, store, tmp_path, monkeypatch):
    """A catalogue is scored in bounded chunks: the ranking does not depend on the chunk size."""
    from hitrank import rank
    from hitrank.cli import main

    run = tmp_path / "run"
    assert main(["train", "--config", str(ROOT / "configs/table1/a_simple_cnn_mid30.yaml"),
                 "--store", str(store), "--out", str(run), "--set", "train.epochs=1", "-q"]) == 0
    whole, _ = rank.rank_folder(corpus / "audio", run, cache=tmp_path / "cache", progress=False)
    monkeypatch.setattr(rank, "SCORE_CHUNK", 5)
    chunked, _ = rank.rank_folder(corpus / "audio", run, cache=tmp_path / "cache", progress=False)
    assert list(chunked.song_id) == list(whole.song_id)
    assert np.allclose(chunked.score, whole.score, atol=1e-6)


@pytest.mark.scale
def test_ray_worker_that_dies_fails_its_songs_and_the_batch_goes_on():
    pytest.importorskip("ray")

    def job(j):  # a decoder that kills its process on one file (a segfault, an OOM kill)
        if j[0] == "killer":
            os._exit(3)
        return j[0], "ok"

    jobs = [(f"song{i}",) for i in range(20)] + [("killer",)]
    with get_engine("ray", 2) as run:
        results = dict(run(job, jobs, lambda j, reason: (j[0], reason)))
    assert len(results) == 21
    assert all(results[f"song{i}"] == "ok" for i in range(20))  # its shard-mates are retried alone
    assert results["killer"].startswith("Ray task failed after retries")
