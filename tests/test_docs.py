"""The documentation is checked, not trusted: README.md and every page of docs/.

- Every ``hitrank ...`` command line parses with the current CLI
  (``hitrank.cli.get_parser().parse_args``) and every ``--config`` it names exists
  (``hitrank.config.resolve_config``; for ``cv`` / ``train`` with a spectrogram config the
  config and its ``--set`` overrides also validate with ``hitrank.config.load_config``).
- Every relative link (and ``#anchor``, GitHub's heading slugs) resolves, and every repository
  file named in inline code (``hitrank/store.py``, ``scripts/bench_train.py``) exists.
- The import lines of every ``python`` code block run, and every ``hitrank.NAME`` they use exists.
- README.md stays the front door: at most 250 lines, its first code block the two commands.

What counts as a command line, and how a page writes one (the rules this file applies):

1. In fenced code blocks, every line; in prose, every inline code span (it may wrap lines within
   its paragraph). ``\\`` continues a line; ``&&``, ``||``, ``;`` and ``|`` (as separate words)
   split it into commands (in inline code, which often quotes a message, only ``&&`` and
   ``||``); ``#`` starts a comment (at the start of a word, as in the shell).
2. A command is ``hitrank ARGS``, ``python -m hitrank ARGS`` or ``torchrun ... -m hitrank ARGS``,
   optionally after environment assignments (``HITRANK_PLUGINS=x hitrank ...``), ``time`` or
   ``nice [-n N]``. Anything else (``hitrank.metrics``, ``hitrank/cli.py``, ``pip install ...``)
   is not a hitrank command.
3. Optional parts are written in square brackets (``[--workers 2]``, not nested) and
   alternatives with ``|`` inside one word (``--format wav|flac``): the line is checked without
   the optional parts, and with them once per alternative.
4. A word in capitals (``NAME``, ``N``, ``CONFIG``) is a placeholder: as a command name
   (``hitrank COMMAND --help``) or the value of an option with choices or a numeric type it
   stands for a valid one, and as a ``--config`` value it is not resolved. Every other word is taken literally (so ``...`` is an error: write the options).
5. Inline code in prose may leave out required arguments (``hitrank tags --model jynet`` names an
   option of a command); every option and value it does give must be valid. Code blocks hold
   whole commands.
6. A page that shows a ``HITRANK_PLUGINS=MODULE hitrank ...`` line defines that plug-in in its
   ``python`` code blocks that call ``register``: the test writes those blocks into MODULE, and
   all command lines of that page are parsed with it imported (as the CLI would).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the front door's size limit (issue 24)
README_MAX_LINES = 250
#: what the README's first code block holds, line by line (checks read the commands from there)
README_COMMANDS = (
    "pip install -e . && hitrank demo",
    'pip install -e ".[dev,ray]" && pip install --no-deps musicnn==0.1.0 && python -m pytest '
    '&& python -m pytest -m "slow or scale"',
)

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")
SEPARATORS = {"&&", "||", ";", "|"}
#: inline code is often a message, not a script: only these join commands there
INLINE_SEPARATORS = {"&&", "||"}
#: programs that run the command after them (``time hitrank ...``, ``nice -n 5 hitrank ...``)
WRAPPERS = {"time", "/usr/bin/time", "nice"}


def doc_pages() -> list[Path]:
    """README.md and every Markdown page of docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# ----------------------------------------------------------------------------- reading pages
@dataclass
class Page:
    path: Path
    text: str
    #: (first line number, language, lines) of each fenced code block
    blocks: list[tuple[int, str, list[str]]] = field(default_factory=list)
    #: (line number, line) of the prose, outside code blocks
    prose: list[tuple[int, str]] = field(default_factory=list)


def read_page(path: Path) -> Page:
    page = Page(path, path.read_text(encoding="utf-8"))
    block: list[str] | None = None
    for no, line in enumerate(page.text.split("\n"), 1):
        m = FENCE.match(line)
        if block is None and m:
            block, start, lang, fence = [], no + 1, line.strip()[3:].strip().lower(), m.group(1)
        elif block is not None and line.strip().startswith(fence):
            page.blocks.append((start, lang, block))
            block = None
        elif block is not None:
            block.append(line)
        else:
            page.prose.append((no, line))
    if block is not None:
        raise AssertionError(f"{path.name}:{start - 1}: code block never closed")
    return page


def paragraphs(page: Page) -> list[tuple[int, str]]:
    """The prose as paragraphs (inline code and links may wrap lines): (first line, text)."""
    out: list[tuple[int, str]] = []
    last = -1
    for no, line in page.prose:
        if not line.strip() or FENCE.match(line):
            last = -1
            continue
        if out and no == last + 1:
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
        else:
            out.append((no, line))
        last = no
    return out


def spans(text: str, pattern: re.Pattern, first: int):
    """(line number, match) of ``pattern`` in a paragraph that starts on line ``first``."""
    for m in pattern.finditer(text):
        yield first + text[: m.start()].count("\n"), m


def logical_lines(lines: list[str], first: int) -> list[tuple[int, str]]:
    """Lines of a code block with ``\\`` continuations joined: (line number, text)."""
    out, buf, start = [], "", first
    for i, line in enumerate(lines):
        if not buf:
            start = first + i
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


# ----------------------------------------------------------------------------- commands
@dataclass
class Command:
    where: str
    argv: list[str]
    env: dict[str, str]
    inline: bool


def _words(text: str) -> list[str]:
    lex = shlex.shlex(text, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""  # comments are cut below, at the start of a word only
    words = []
    for word in lex:
        if word.startswith("#"):
            break
        if word.endswith(";") and word != ";":
            words += [word[:-1], ";"]
        else:
            words.append(word)
    return words


def hitrank_argv(words: list[str]) -> tuple[list[str], dict[str, str]] | None:
    """The argv of a hitrank invocation (rule 2), or None when the words are another program."""
    env = {}
    while words and ENV_ASSIGNMENT.match(words[0]):
        key, value = words[0].split("=", 1)
        env[key] = value
        words = words[1:]
    while words and words[0] in WRAPPERS:
        words = words[3:] if words[0] == "nice" and len(words) > 2 and words[1] == "-n" else words[1:]
    if not words:
        return None
    if words[0] == "hitrank":
        return words[1:], env
    if words[0] in ("python", "python3", "torchrun"):
        for i in range(1, len(words) - 1):
            if words[i] == "-m":
                return (words[i + 2:], env) if words[i + 1] == "hitrank" else None
    return None


def commands_in(text: str, where: str, inline: bool) -> list[Command]:
    """Every hitrank command of one logical line (rule 1 and 2)."""
    try:
        words = _words(text)
    except ValueError as exc:  # unbalanced quotes: an error only where a command starts
        for part in re.split(r"\s(?:&&|\|\||;|\|)\s", text):
            if hitrank_argv(part.split()) is not None:
                raise AssertionError(f"{where}: cannot split {text!r} into words ({exc})") from None
        return []
    out, part = [], []
    separators = INLINE_SEPARATORS if inline else SEPARATORS
    for i, word in enumerate(words + [""]):
        if word in separators or i == len(words):
            found = hitrank_argv(part)
            if found is not None:
                out.append(Command(where, found[0], found[1], inline))
            part = []
        else:
            part.append(word)
    return out


def variants(argv: list[str], where: str) -> list[list[str]]:
    """The argvs a line with optional ``[...]`` parts and ``a|b`` alternatives stands for (rule 3)."""
    items: list[tuple[bool, str]] = []  # (optional, word)
    depth = 0
    for word in argv:
        opens, closes = word.startswith("["), word.endswith("]") and not word.endswith("=[]")
        if opens:
            if depth:
                raise AssertionError(f"{where}: nested optional parts in {' '.join(argv)!r}; "
                                     "write them one after the other")
            depth, word = 1, word[1:]
        optional = depth == 1
        if closes and depth and "[" not in word:
            depth, word = 0, word[:-1]
        if word:
            items.append((optional, word))
    if depth:
        raise AssertionError(f"{where}: '[' without ']' in {' '.join(argv)!r}")
    n_alt = max([len(w.split("|")) for _, w in items] + [1])
    has_optional = any(opt for opt, _ in items)
    out = []
    if has_optional:
        out.append([w.split("|")[0] for opt, w in items if not opt])
    for k in range(n_alt):
        out.append([w.split("|")[min(k, len(w.split("|")) - 1)] for _, w in items])
    return out


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def fill_placeholders(parser, argv: list[str]) -> list[str]:
    """Rule 4: a capitalised command name (``hitrank COMMAND --help``) or value of an option with
    choices or a numeric type stands for a valid one."""
    out = list(argv)
    for i, word in enumerate(out):  # the command (and sub-command) names
        subs = _subparsers(parser)
        if not subs or word.startswith("-"):
            break
        if PLACEHOLDER.match(word):
            out[i] = word = next(iter(subs))
        if word not in subs:
            break
        parser = subs[word]
    for i in range(1, len(out)):
        action = parser._option_string_actions.get(out[i - 1])
        if action is None or not PLACEHOLDER.match(out[i]):
            continue
        if action.choices:
            out[i] = str(next(iter(action.choices)))
        elif action.type not in (None, str, Path):  # int, float and the numbers hitrank checks (--seed)
            out[i] = "1"
    return out


def relax(parser: argparse.ArgumentParser) -> None:
    """Rule 5: no argument is required (inline code names options, not whole commands)."""
    for action in parser._actions:
        action.required = False
    for group in parser._mutually_exclusive_groups:
        group.required = False
    for sub in _subparsers(parser).values():
        relax(sub)


def parse(argv: list[str], inline: bool) -> argparse.Namespace | None:
    """Parse with a fresh parser; raise AssertionError with argparse's own message."""
    from hitrank.cli import get_parser

    parser = get_parser()
    if inline:
        relax(parser)
    argv = fill_placeholders(parser, argv)
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            return parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0:  # --help, --version
            return None
        raise AssertionError(err.getvalue().strip().splitlines()[-1]) from None


def check_configs(ns: argparse.Namespace | None, argv: list[str]) -> None:
    """Every --config exists; cv/train with a spectrogram config also validates its --set."""
    from hitrank.config import load_config, parse_override, read_yaml, resolve_config

    if ns is None:
        return
    overrides = [str(o) for o in getattr(ns, "overrides", None) or []]
    for item in overrides:
        parse_override(item)
    config = getattr(ns, "config", None)
    if config is None or PLACEHOLDER.match(Path(str(config)).stem):
        return
    resolve_config(config)
    if argv[0] in ("cv", "train") and read_yaml(config).get("branch", "spectrogram") == "spectrogram":
        load_config(config, overrides)


def page_commands(page: Page) -> list[Command]:
    rel = page.path.relative_to(ROOT)
    found = []
    for start, _, lines in page.blocks:
        for no, line in logical_lines(lines, start):
            found += commands_in(line, f"{rel}:{no}", inline=False)
    for first, text in paragraphs(page):
        for no, m in spans(text, INLINE_CODE, first):
            found += commands_in(m.group(2).replace("\n", " "), f"{rel}:{no}", inline=True)
    return found


@contextlib.contextmanager
def page_plugins(page: Page, commands: list[Command], tmp_path: Path, monkeypatch):
    """Rule 6: the page's plug-in, written from its python blocks, imported for its commands."""
    names = {n.strip() for c in commands for n in c.env.get("HITRANK_PLUGINS", "").split(",") if n.strip()}
    if not names:
        yield
        return
    from hitrank import segments
    from hitrank.models import registry

    code = "\n\n".join(textwrap.dedent("\n".join(lines)) for _, lang, lines in page.blocks
                       if lang == "python" and "register" in "\n".join(lines))
    assert code, f"{page.path.name}: names a plug-in ({', '.join(names)}) but defines none in a python block"
    folder = tmp_path / f"plugins_{page.path.stem}"
    folder.mkdir()
    for name in names:
        (folder / f"{name}.py").write_text(code)
    seg_before, models_before = set(segments.names()), set(registry.available())
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("HITRANK_PLUGINS", ",".join(sorted(names)))
    try:
        yield
    finally:
        for name in set(segments.names()) - seg_before:
            segments.unregister(name)
        for name in set(registry.available()) - models_before:
            registry.unregister(name)
        for name in names:
            sys.modules.pop(name, None)
        monkeypatch.delenv("HITRANK_PLUGINS")


def check_page_commands(page: Page, tmp_path: Path, monkeypatch) -> tuple[int, list[str]]:
    """(number of argvs checked, one message per command that fails)."""
    monkeypatch.chdir(ROOT)  # file configs (configs/table1/...) are relative to the repository
    commands = page_commands(page)
    problems, n = [], 0
    with page_plugins(page, commands, tmp_path, monkeypatch):
        for cmd in commands:
            for argv in variants(cmd.argv, cmd.where):
                n += 1
                try:
                    check_configs(parse(argv, cmd.inline), argv)
                except Exception as exc:  # noqa: BLE001 - every failure is reported with its line
                    problems.append(f"{cmd.where}: `hitrank {' '.join(argv)}`: {type(exc).__name__}: {exc}")
    return n, problems


# ----------------------------------------------------------------------------- links
def slug(heading: str) -> str:
    """GitHub's anchor of a heading: rendered text, lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Page) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in page.prose:
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        k = seen.get(base, 0)
        seen[base] = k + 1
        out.add(base if k == 0 else f"{base}-{k}")
    return out


def page_links(page: Page) -> list[tuple[int, str]]:
    out = []
    for first, text in paragraphs(page):
        text = INLINE_CODE.sub(lambda m: "code" + "\n" * m.group(0).count("\n"), text)
        out += [(no, m.group(1)) for no, m in spans(text, LINK, first)]
    return out


def check_page_links(page: Page) -> list[str]:
    problems = []
    rel = page.path.relative_to(ROOT)
    for no, target in page_links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path_part, _, frag = target.partition("#")
        dest = (page.path.parent / path_part).resolve() if path_part else page.path
        if not dest.exists():
            problems.append(f"{rel}:{no}: link {target!r}: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} does not exist")
            continue
        if frag and dest.suffix == ".md" and frag not in anchors(read_page(dest)):
            problems.append(f"{rel}:{no}: link {target!r}: no heading with the anchor #{frag} in {dest.name}")
    return problems


def repository_paths(page: Page) -> list[tuple[int, str]]:
    """(line, path) of each inline code span that names a file or folder of the repository:
    ``hitrank/...``, ``scripts/...``, ``tests/...``, ``configs/...``, ``docs/...`` ending in a
    source suffix or ``/`` (no globs, no placeholders)."""
    out = []
    for first, text in paragraphs(page):
        for no, m in spans(text, INLINE_CODE, first):
            code = m.group(2).strip()
            if (re.match(r"^(hitrank|scripts|tests|configs|docs)/[\w./-]*$", code)
                    and re.search(r"(\.(py|yaml|sh|md|npz)|/)$", code)):
                out.append((no, code))
    return out


# ----------------------------------------------------------------------------- python blocks
def python_lines(page: Page):
    """(where, line) of every line of the page's python blocks (dedented)."""
    rel = page.path.relative_to(ROOT)
    for start, lang, lines in page.blocks:
        if lang == "python":
            for i, line in enumerate(textwrap.dedent("\n".join(lines)).split("\n")):
                yield f"{rel}:{start + i}", line


def python_imports(page: Page) -> list[tuple[str, str]]:
    """(where, statement) of every import line in the page's python blocks."""
    return [(where, line.strip()) for where, line in python_lines(page)
            if re.match(r"^\s*(import|from)\s+\S+", line) and "hitrank" in line]


def api_names(page: Page) -> list[tuple[str, str]]:
    """(where, dotted name) of each ``hitrank.a.b`` used in the page's python blocks."""
    return [(where, m.group(0)) for where, line in python_lines(page)
            for m in re.finditer(r"\bhitrank(\.[A-Za-z_]\w*)+", line.split("#", 1)[0])]


def resolve_name(dotted: str):
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], 1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(parts[: i + 1]))
    return obj


# ============================================================================= the checks
PAGES = doc_pages()
IDS = [str(p.relative_to(ROOT)) for p in PAGES]


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_every_command_line_parses_and_names_configs_that_exist(path, tmp_path, monkeypatch):
    n, problems = check_page_commands(read_page(path), tmp_path, monkeypatch)
    assert not problems, f"{len(problems)} of {n} command lines do not parse:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_every_relative_link_and_anchor_resolves(path):
    problems = check_page_links(read_page(path))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_every_file_named_in_inline_code_exists(path):
    page = read_page(path)
    missing = [f"{path.relative_to(ROOT)}:{no}: `{p}` does not exist" for no, p in repository_paths(page)
               if not (ROOT / p).exists()]
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_python_examples_import_what_exists(path):
    page = read_page(path)
    problems = []
    for where, stmt in python_imports(page):
        try:
            exec(compile(stmt, where, "exec"), {})
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{where}: {stmt!r}: {type(exc).__name__}: {exc}")
    for where, name in api_names(page):
        try:
            resolve_name(name)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{where}: {name}: {type(exc).__name__}: {exc}")
    assert not problems, "\n".join(problems)


def test_readme_is_the_front_door():
    page = read_page(ROOT / "README.md")
    n_lines = len(page.text.rstrip("\n").split("\n"))
    assert n_lines <= README_MAX_LINES, f"README.md has {n_lines} lines; keep it at most {README_MAX_LINES} (the rest in docs/)"
    assert page.blocks, "README.md has no code block"
    first = [line.strip() for line in page.blocks[0][2] if line.strip()]
    assert tuple(first) == README_COMMANDS, f"README.md's first code block must be exactly {README_COMMANDS}, found {first}"


def test_every_docs_page_is_in_the_index():
    index = read_page(ROOT / "docs" / "README.md")
    linked = {(ROOT / "docs" / t.partition("#")[0]).resolve() for _, t in page_links(index) if t.partition("#")[0]}
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "README.md" and p.resolve() not in linked]
    assert not missing, f"docs/README.md does not link to: {', '.join(missing)}"


def test_no_benchmarks_md_at_the_top():
    assert not (ROOT / "BENCHMARKS.md").exists(), "the benchmarks live in docs/benchmarks.md"


# ----------------------------------------------------------------------------- the checker fails
BROKEN_PAGE = """# Title

## A section: with `code` and (punctuation)

[ok](#a-section-with-code-and-punctuation) [bad anchor](#no-such-heading) [gone](missing.md)
Prose naming `hitrank cv --config no_such_config --store s --out r` and `hitrank tags --top many`,
in `hitrank/no_such_module.py`, not in `hitrank/*.py` or `OUT/audio/`.

```bash
hitrank extract corpus/ --out store/ [--segment mid30|hl99]
hitrank rank songs/ --model runs/a --no-such-flag   # a comment
OMP_NUM_THREADS=1 hitrank synth c/ --songs N && hitrank demo
python -m hitrank demo --songs ...
hitrank cv --config table1/a_simple_cnn_mid30 --store s --out r \\
    --set train.no_such_key=1
```
"""


def test_the_checks_find_broken_links_commands_and_configs(tmp_path, monkeypatch):
    path = tmp_path / "page.md"
    path.write_text(BROKEN_PAGE)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    page = read_page(path)
    links = check_page_links(page)
    assert len(links) == 2 and "#no-such-heading" in links[0] and "missing.md" in links[1]
    assert repository_paths(page) == [(7, "hitrank/no_such_module.py")]

    n, problems = check_page_commands(page, tmp_path, monkeypatch)
    text = "\n".join(problems)
    assert n == 10, problems  # 2 inline, extract x3 (no option, mid30, hl99), rank, synth, demo x2, cv
    assert "no_such_config" in text and "config file does not exist" in text
    assert "--top: invalid int value: 'many'" in text
    assert "hl99" in text
    assert "--no-such-flag" in text
    assert "'...'" in text or "invalid int value: '...'" in text
    assert "no_such_key" in text
    assert "synth c/ --songs" not in text and "demo`" not in text  # N is a placeholder; demo parses
    assert len(problems) == 6, text


def test_slugs_follow_github():
    assert slug("Tags: the MTT tagger ports (musicnn and JYnet)") == "tags-the-mtt-tagger-ports-musicnn-and-jynet"
    assert slug("The authors' models: ret30 and JYnet") == "the-authors-models-ret30-and-jynet"
    assert slug("`hit_descriptors`, 10-fold") == "hit_descriptors-10-fold"
    page = read_page_from_text("# A\n\n## A\n\n## A\n")
    assert anchors(page) == {"a", "a-1", "a-2"}


def read_page_from_text(text: str) -> Page:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "p.md"
        p.write_text(text)
        return read_page(p)
