"""The house rules as tests: a new segment method and a new model are a registry entry, a
module and a config away; the package keeps its layers; a wheel carries its configs."""

from __future__ import annotations

import ast
import os
import re
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
#: The layer table of docs/architecture.md: every module of the package (dotted, without the
#: leading ``hitrank.``; a package's ``__init__`` is the package's name, ``hitrank`` the top
#: one) in its layer, bottom (0) to top (5). A module imports, inside functions too, only from
#: its own layer or the layers below it, and the imports form no cycle.
LAYERS = {
    0: ("version", "constants", "errors", "fileio", "runtime", "payload", "journal", "runinfo",
        "yamlconfig"),
    1: ("truncation", "audio", "features", "corpus", "thumbnail", "thumbnail.fallback", "thumbnail.window",
        "thumbnail.attention", "thumbnail.plot", "thumbnail.files", "tags", "tags.bundle",
        "tags.clips", "tags.musicnn", "tags.jynet", "segments", "store", "engines", "synth"),
    2: ("models", "models.registry", "models.layers", "models.cnn", "models.siamese",
        "models.tagfusion", "models.descriptor", "models.ret30", "inference", "losses", "metrics",
        "uncertainty", "strata", "ood", "reference", "targets", "schema", "config", "embeddings",
        "extract", "whole_song"),
    3: ("loop", "data", "distributed", "train", "bank", "bank.network", "bank.engines",
        "bank.sizing", "checkpoint", "cv", "thumbnail.training", "descriptors",
        "descriptors.table", "descriptors.history", "descriptors.config", "descriptors.evaluate",
        "descriptors.learners", "descriptors.prepare", "descriptors.fitting", "descriptors.model",
        "descriptors.cv", "descriptors.commands", "descriptors.extractor_names",
        "descriptors.extractors", "descriptors.audio", "descriptors.apply", "descriptors.fit",
        "transfer", "transfer.config", "transfer.learners", "transfer.protocol",
        "transfer.learning_curve", "transfer.halves", "transfer.report", "neighbours", "ranking_table"),
    4: ("commands", "rank", "curve", "report", "cvreport", "pretrained", "table1", "demo"),
    5: ("cli", "__main__", "hitrank"),
}
LAYER = {mod: layer for layer, mods in LAYERS.items() for mod in mods}
#: the longest chain of imports allowed (modules, the first importer to the last imported)
MAX_CHAIN = 11
#: libraries whose import cost (or absence) justifies importing a module inside a function
HEAVY = ("torch", "ray", "essentia", "matplotlib")


def _name(path: Path) -> str:
    """``hitrank/tags/__init__.py`` -> ``tags``; ``hitrank/__init__.py`` -> ``hitrank``."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "hitrank"


def _dotted(mod: str) -> str:
    return "hitrank" if mod == "hitrank" else f"hitrank.{mod}"


def _scan() -> dict[str, list[tuple[str, str, int]]]:
    """Every import of every module: ``{module: [(imported, where, line), ...]}``, ``where``
    one of ``top``, ``function`` and ``typing`` (under ``if TYPE_CHECKING:``).

    Imports inside functions and under ``TYPE_CHECKING`` count; ``from X import a`` imports
    ``X.a`` when that is a module, else ``X``; ``import X`` counts when X is a module of the
    package. Other libraries are recorded under their top-level name.
    """
    files = {_name(p): p for p in PACKAGE.rglob("*.py")}
    known = {_dotted(m): m for m in files}
    out = {}
    for mod, path in files.items():
        tree = ast.parse(path.read_text())
        inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f)}
        typing = {id(n) for f in ast.walk(tree) if isinstance(f, ast.If) and "TYPE_CHECKING" in ast.unparse(f.test)
                  for n in ast.walk(f)}
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    here = _dotted(mod).split(".")
                    base = here if path.name == "__init__.py" else here[:-1]
                    base = base[: len(base) - node.level + 1]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                names = [next((c for c in (f"{src}.{a.name}", src) if c in known), src) for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                target = known.get(name, name.split(".")[0] if not name.startswith("hitrank") else None)
                if target and target != mod:
                    where = "function" if id(node) in inner else "typing" if id(node) in typing else "top"
                    found.append((target, where, node.lineno))
        out[mod] = found
    return out


def _graph(scan: dict) -> dict[str, set[str]]:
    """``{module: the package's modules it imports}``, imports inside functions counted."""
    return {m: {t for t, _, _ in found if t in scan} for m, found in scan.items()}


SCAN = _scan()
GRAPH = _graph(SCAN)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(sorted(comp))
    return [c for c in comps if len(c) > 1]


def _longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest chain of imports (a cycle counted as one module, as ``import_layers.py``)."""
    comp = {m: m for m in graph}
    for c in _cycles(graph):
        for m in c:
            comp[m] = "{" + ", ".join(c) + "}"
    dag = {}
    for m, ts in graph.items():
        dag.setdefault(comp[m], set()).update(comp[t] for t in ts if comp[t] != comp[m])
    best: dict[str, list[str]] = {}

    def chain(node: str) -> list[str]:
        if node not in best:
            best[node] = [node] + max((chain(t) for t in sorted(dag[node])), key=len, default=[])
        return best[node]

    return max((chain(n) for n in sorted(dag)), key=len)


def test_every_module_has_a_layer():
    missing, gone = sorted(set(SCAN) - set(LAYER)), sorted(set(LAYER) - set(SCAN))
    assert not missing, f"modules without a layer (add them to LAYERS and docs/architecture.md): {missing}"
    assert not gone, f"LAYERS names modules that do not exist: {gone}"
    twice = sorted(m for m in LAYER if sum(m in mods for mods in LAYERS.values()) > 1)
    assert not twice, f"modules in two layers: {twice}"


def test_the_layer_table_is_the_one_in_docs_architecture():
    """docs/architecture.md's table lists, row by row, the modules of each layer (in backticks)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| (\d)\. [^|]+\| ([^|]+)\|", text, flags=re.M)
    documented = {int(n): set(re.findall(r"`([\w.]+)`", cell)) for n, cell in rows}
    assert set(documented) == set(LAYERS), f"docs/architecture.md has layers {sorted(documented)}"
    for layer, mods in LAYERS.items():
        assert documented[layer] == set(mods), (
            f"layer {layer}: only in docs/architecture.md {sorted(documented[layer] - set(mods))}, "
            f"only in this test {sorted(set(mods) - documented[layer])}")


def test_every_import_points_down_the_layers():
    up = [f"{m} ({LAYER[m]}) imports {t} ({LAYER[t]}) at line {line} ({where})"
          for m, found in sorted(SCAN.items()) for t, where, line in found
          if t in LAYER and m in LAYER and LAYER[t] > LAYER[m]]
    assert not up, "imports that point up the layer table:\n" + "\n".join(up)


def test_only_the_entry_point_imports_the_cli():
    importers = sorted(m for m, ts in GRAPH.items() if "cli" in ts and m != "__main__")
    assert not importers, f"{importers} import the CLI; the CLI calls library code, never the reverse"


def test_models_import_only_the_ground_and_each_other():
    """``models/`` builds networks from kwargs: it never reads files or features."""
    bad = {m: sorted(t for t in ts if not t.startswith("models") and LAYER.get(t) != 0)
           for m, ts in GRAPH.items() if m.split(".")[0] == "models"}
    assert not any(bad.values()), {m: ts for m, ts in bad.items() if ts}


def test_the_imports_have_no_cycle():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles (imports inside functions counted): " + " | ".join(
        ", ".join(c) for c in cycles)


def test_the_longest_import_chain_is_short():
    chain = _longest_chain(GRAPH)
    assert len(chain) <= MAX_CHAIN, f"{len(chain)} modules (at most {MAX_CHAIN}): {' -> '.join(chain)}"


def test_imports_inside_functions_are_for_heavy_libraries_only():
    """A module of the package is imported inside a function only when importing it loads a
    heavy or optional library (HEAVY) -- never to hide an upward or circular import."""
    heavy: dict[str, bool] = {}

    def loads_heavy(mod: str, seen=()) -> bool:
        if mod not in heavy:
            top = {t for t, where, _ in SCAN[mod] if where == "top"}  # what importing it runs
            heavy[mod] = bool(top & set(HEAVY)) or any(
                loads_heavy(t, (*seen, mod)) for t in sorted(top & set(SCAN)) if t not in seen)
        return heavy[mod]

    light = [f"{m} line {line}: {t}" for m, found in sorted(SCAN.items()) for t, where, line in found
             if where == "function" and t in SCAN and not loads_heavy(t)]
    assert not light, ("imports of light modules inside functions (import them at the top):\n"
                       + "\n".join(light))


def test_the_counts_agree_with_the_import_layers_hook():
    """The hook the issue names counts the same graph (skipped where ../shared is absent)."""
    hook = ROOT.parent / "shared" / "hooks" / "import_layers.py"
    if not hook.is_file():
        pytest.skip(f"{hook} is absent")
    line = subprocess.run([sys.executable, str(hook), str(PACKAGE)], capture_output=True, text=True,
                          check=True).stdout
    graph = _graph(_scan())  # read again: the same files the hook just read
    n_mods, n_edges = (int(x) for x in re.match(r"(\d+) modules, (\d+) import edges", line).groups())
    assert (n_mods, n_edges) == (len(graph), sum(map(len, graph.values()))), line
    assert f"{len(_cycles(graph))} cycles, {len(_longest_chain(graph))} layers" in line, line


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
    with pytest.raises(ConfigError, match="not a packaged config; packaged: curve/c_simple_cnn_hl30_contrast, curve/c_simple_cnn_hl30_whole, descriptors/"):
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
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # the dependencies are this interpreter's: its site folders, appended after the venv's own
    # by a .pth file (plain paths, so the .pth files there, e.g. an editable hitrank, stay unread)
    ours = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
            *(p for p in sys.path if Path(p).name in ("site-packages", "dist-packages"))]
    ours = [p for p in dict.fromkeys(ours) if Path(p).is_dir()]
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          env=env, check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "hitrank_test_deps.pth").write_text("\n".join(ours) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, env=env)
    away = tmp_path / "elsewhere"
    away.mkdir()
    where = subprocess.run([str(py), "-c", "import hitrank, torch; print(hitrank.__file__); print(torch.__file__)"],
                           cwd=away, env=env, check=True, capture_output=True, text=True).stdout.splitlines()
    assert where[0].startswith(str(venv)), where  # the wheel, not the checkout
    assert any(where[1].startswith(p) for p in ours), where  # torch reused, nothing downloaded
    res = subprocess.run([str(py), "-m", "hitrank", "cv", "--config", "table1/a_simple_cnn_mid30",
                          "--store", str(store), "--out", str(away / "run"), "--folds", "3",
                          "--set", "train.epochs=1"], cwd=away, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (away / "run" / "summary.json").is_file()
