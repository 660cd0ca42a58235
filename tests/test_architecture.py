"""The house rules as tests: a new segment method and a new model are a registry entry, a
module and a config away; the package keeps its layers; a wheel carries its configs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hitrank import segments
from hitrank.cli import main
from hitrank.config import load_config, packaged_configs, resolve_config
from hitrank.errors import ConfigError, ParameterError
from hitrank.models import build, register, unregister

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hitrank"


# ----------------------------------------------------------------------------- plug-ins
#: A plug-in module (the worked examples of docs/architecture.md): a segment method that takes
#: the first 30 s, and the smallest scoring model there is. Named in $HITRANK_PLUGINS, it is
#: imported by the CLI and by every worker process (cv trains folds in worker processes).
PLUGIN = """
import torch

from hitrank import segments
from hitrank.audio import load_window
from hitrank.models import Scorer, register


@segments.register
class First30(segments.SegmentMethod):
    name = "first30"
    help = "the first 30 s"
    manifest_fields = ("why",)

    def cut(self, path, params, highlighter=None):
        seg = load_window(path, 0.0, params.segment_seconds, params.sr, allow_silent=True)
        return segments.Cut(seg, {"why": "first"})


@register("mean_linear")
class MeanLinear(Scorer):
    def __init__(self, n_mels: int = 128):
        super().__init__()
        self.lin = torch.nn.Linear(n_mels, 1)
        self.register_buffer("in_mean", torch.zeros(n_mels))
        self.register_buffer("in_std", torch.ones(n_mels))

    def set_input_stats(self, mean, std):
        self.in_mean.copy_(mean)
        self.in_std.copy_(torch.clamp(std, min=1e-3))

    def forward(self, x):
        x = (x.float() - self.in_mean[:, None]) / self.in_std[:, None]
        return self.lin(x.mean(dim=2)).squeeze(-1)
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    import importlib
    import sys as _sys

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "hitrank_toys.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("HITRANK_PLUGINS", "hitrank_toys")
    importlib.import_module("hitrank_toys")
    yield
    segments.unregister("first30")
    unregister("mean_linear")
    _sys.modules.pop("hitrank_toys", None)


def test_a_new_segment_method_runs_extract_cv_and_rank(plugin, corpus, tmp_path, capsys):
    assert "first30" in segments.names()
    store = tmp_path / "store"
    assert main(["extract", str(corpus / "labels.csv"), "--out", str(store), "--segment", "first30"]) == 0
    man = pd.read_csv(store / "manifest.csv", keep_default_na=False)
    assert (man.seg_start == 0).all() and (man.why == "first").all()
    assert np.load(store / "mel_first30.npy").shape == (24, 128, 323)
    run = tmp_path / "run"
    assert main(["cv", "--config", "table1/a_simple_cnn_mid30", "--store", str(store), "--out", str(run),
                 "--set", "features.segment=first30", "--set", "train.epochs=1", "--folds", "3"]) == 0
    assert main(["rank", str(corpus / "audio"), "--model", str(run), "--cache", str(tmp_path / "c"),
                 "--json"]) == 0
    out = capsys.readouterr().out
    assert '"seg_start": 0.0' in out.splitlines()[-1]


def test_an_unknown_segment_method_is_refused_with_the_known_ones():
    with pytest.raises(ParameterError, match=r"known segment methods: \['mid30', 'hl30'"):
        segments.get("first30")
    with pytest.raises(ConfigError, match="features.segment='first30'; allowed"):
        load_config(None, ["features.segment=first30"])


def test_a_new_model_runs_from_a_config(plugin, store, tmp_path):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text("# a toy model\nmodel:\n  name: mean_linear  # registered by the test\n"
                   "train:\n  epochs: 2\ncv:\n  folds: 3\n")
    run = tmp_path / "run"
    assert main(["cv", "--config", str(cfg), "--store", str(store), "--out", str(run)]) == 0
    assert len(pd.read_csv(run / "folds.csv")) == 3
    payload = torch.load(run / "fold_00.pt", weights_only=True)
    assert payload["members"][0]["model"] == "mean_linear"
    # a Siamese model wraps any registered scorer
    assert main(["cv", "--config", str(cfg), "--store", str(store), "--out", str(tmp_path / "s"),
                 "--set", "model.name=siamese", "--set", "model.kwargs={scorer: mean_linear}",
                 "--set", "pairs.sampling=naive"]) == 0


def test_the_registry_states_its_interface():
    class NoPair(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="ScoringModel interface"):
        register("no_pair")(NoPair)
    assert build("simple_cnn").trains_on_pairs is False and build("siamese").trains_on_pairs is True


# ----------------------------------------------------------------------------- layers
def _imports(path: Path) -> set[str]:
    """hitrank modules imported by a file (at any depth), as dotted names."""
    rel = path.relative_to(ROOT).with_suffix("")
    pkg = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.startswith("hitrank.")}


FEATURE_MODULES = ("audio", "features", "segments", "store", "extract", "engines", "corpus",
                   "journal", "thumbnail", "tags")
LEARNING_MODULES = ("train", "cv", "loop", "data", "checkpoint", "bank", "experiment", "losses")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers(path):
    imports = _imports(path)
    rel = path.relative_to(PACKAGE).as_posix()
    if rel not in ("cli.py", "__main__.py"):
        assert not {m for m in imports if m.startswith("hitrank.cli")}, f"{rel} imports the CLI"
    top = rel.split("/")[0].removesuffix(".py")
    if top in FEATURE_MODULES and not rel.startswith("thumbnail/training"):
        bad = {m for m in imports if m.split(".")[1] in LEARNING_MODULES}
        assert not bad, f"{rel} (features) imports the learning layer: {bad}"
    if top == "models":
        bad = {m for m in imports if m.split(".")[1] in (*FEATURE_MODULES, *LEARNING_MODULES)}
        assert not bad, f"{rel} (models never read files) imports {bad}"


def test_no_module_reaches_into_another_modules_private_names():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("hitrank")):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                assert not private, f"{path.relative_to(ROOT)} imports private {private} from {node.module}"


# ----------------------------------------------------------------------------- packaged configs
def test_packaged_configs_resolve_by_name():
    assert "table1/a_simple_cnn_mid30" in packaged_configs()
    assert resolve_config("table1/a_simple_cnn_mid30") == resolve_config("table1/a_simple_cnn_mid30.yaml")
    assert resolve_config("configs/table1/a_simple_cnn_mid30.yaml").is_file()
    with pytest.raises(ConfigError, match="not a packaged config; packaged: descriptors/"):
        resolve_config("table1/z_nothing")


def test_wheel_carries_the_configs_and_runs_cv_outside_the_checkout(store, tmp_path):
    """Build the wheel, install it in a fresh venv (reusing this torch), run cv elsewhere."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(ROOT)], check=True, capture_output=True)
    wheel = next(wheels.glob("hitrank-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "hitrank/configs/table1/a_simple_cnn_mid30.yaml" in names
    assert sum(n.endswith(".yaml") for n in names) >= 12 + 8
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True)
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(py), "-c", "import hitrank; print(hitrank.__file__)"], cwd=away, env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert where.startswith(str(venv)), where  # the wheel, not the checkout
    res = subprocess.run([str(py), "-m", "hitrank", "cv", "--config", "table1/a_simple_cnn_mid30",
                          "--store", str(store), "--out", str(away / "run"), "--folds", "3",
                          "--set", "train.epochs=1"], cwd=away, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (away / "run" / "summary.json").is_file()
    assert sysconfig.get_paths()  # (the venv reused this interpreter's site-packages for torch)
