"""HTML ranking report (``hitrank rank FOLDER --model RUN --html report.html``).

No CDN, works offline: a sortable, filterable, paginated table of the ranked songs (rank,
name, artist, score with a bar and the fold-ensemble spread), an audio player per song that
starts at the analysed 30 s segment (the highlight for HL-30 models; the audio is referenced
by a relative path, or embedded with ``embed_audio``), a small image of the segment's
log-mel, the per-second highlight curve with the chosen window (HL-30), the top tags when
the store has them, and the files that failed. With ``--curve`` each song's hit-potential
curve is drawn under its log-mel strip with the analysed segment and the best window marked,
and the player jumps to either. With a reference, the percentile in words ("higher than 87%
[78, 93] of the 200 training songs of runs/ab"); with nearest neighbours, the closest
reference songs ("closest: A (0.93), B (0.88)") and the fit to the reference. Log-mel strips
are drawn in decibels whatever the model's input scale (raw power for the authors' KKBOX
model). Every name, path and tag is HTML-escaped; URLs are percent-encoded; the page runs no
code from the data.

Catalogue-sized rankings stay usable in a browser: the page shows :data:`PAGE_ROWS` songs at
a time. The first page is plain HTML; every row is also in a JSON block (its pre-escaped HTML
and its sort keys), so sorting and the search run over all songs and only the shown page's
rows become DOM nodes. Rankings of at most :data:`INLINE_IMAGES_MAX` songs (or with
``embed_audio``) are one self-contained file; larger ones write their log-mel strips as PNG
files into ``<report stem>_files/<n>.png`` beside the report (``n``: the row's position,
never a song's name), loaded lazily as they come into view. The HTML file itself stays
under :data:`BUDGET_BYTES_PER_SONG` per song (tested on 3,000 songs).

Sorting, filtering and the page can also be set from the URL
(``report.html#sort=score&dir=asc&q=abc&page=2``), which the page keeps up to date.
"""

from __future__ import annotations

import base64
import html
import json
import mimetypes
import os
import re
import shutil
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from .constants import DB_AMIN, LOG1P_SCALE
from .errors import HitrankError
from .fileio import atomic_write_text
from .neighbours import split_cell
from .reference import describe
from .store import FeatureStore
from .tags import TAGS

EMBED_LIMIT = 50 * 2**20  # bytes of audio embedded at most (base64 grows it by a third)
PAGE_ROWS = 100  # songs shown per page of the report
INLINE_IMAGES_MAX = PAGE_ROWS  # songs up to which the log-mel PNGs are inlined (one self-contained file)
BUDGET_BYTES_PER_SONG = 3072  # HTML bytes per song at most with every column and links to the reference audio, images in side files (tested)
CURVE_POINTS = 40  # points of a drawn curve at most (one per 4 px of the 160 px strip)
NEAREST_SHOWN = 5  # closest reference songs written per song
PNG_LEVEL = 6  # zlib level of the strips (level 9 gave no smaller files on fabricated strips)
SIDE_PNG = re.compile(r"\d+\.png")  # the only files the report writes into its side folder
FLAG_HELP = {"silent": "the analysed segment holds no sound (silence, a click, a constant level, a file under 1 s): ranked last",
             "padded": "shorter than the 30 s segment by at least 5% of it: zero-padded",
             "out_of_distribution": "its features lie far from the training songs': treat the score with care",
             "unstable": "moving the 30 s window by up to 1 s changes the score by more than a quarter "
                         "of the spread between songs: treat the score with care"}
NEW_KEY = "_new"  # a row key set for the songs rank --since added (not a column of the ranking)
NEW_HELP = "ranked in this run, not kept from the previous ranking (rank --since)"


def _png(rgb: np.ndarray) -> bytes:
    """Encode an (h, w, 3) uint8 image as PNG (zlib only; no imaging library needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, PNG_LEVEL)) + chunk(b"IEND", b""))


def _colour(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> a dark-blue / teal / yellow ramp, (..., 3) uint8."""
    stops = np.array([[13, 8, 60], [40, 90, 140], [30, 160, 130], [250, 230, 80]], dtype=np.float64)
    pos = np.clip(x, 0, 1) * (len(stops) - 1)
    i = np.minimum(pos.astype(int), len(stops) - 2)
    f = (pos - i)[..., None]
    return (stops[i] * (1 - f) + stops[i + 1] * f).astype(np.uint8)


def to_db(mel: np.ndarray, log: str) -> np.ndarray:
    """Features stored with log scaling ``log`` (``db``, ``log1p``, ``none``: raw power) as
    decibels, (n_mels, T) float32, so that every strip is drawn on the same scale."""
    m = np.asarray(mel, dtype=np.float64)
    if log == "none":
        power = m
    elif log == "log1p":  # log10(1 + C * S) -> S
        power = (10.0 ** m - 1.0) / LOG1P_SCALE
    else:
        return m.astype(np.float32)
    return (10.0 * np.log10(np.maximum(power, DB_AMIN))).astype(np.float32)


def mel_png_bytes(mel: np.ndarray, width: int = 160, height: int = 48) -> bytes:
    """A small PNG (``height`` x ``width`` pixels) of a log-mel in dB, (n_mels, T), low
    frequencies at the bottom."""
    m = np.asarray(mel, dtype=np.float32)
    lo, hi = np.percentile(m, [2, 99.5])
    m = (m - lo) / max(hi - lo, 1e-6)
    rows = np.linspace(0, m.shape[0] - 1, height).astype(int)[::-1]
    cols = np.linspace(0, m.shape[1] - 1, width).astype(int)
    return _png(_colour(m[np.ix_(rows, cols)]))


def mel_png(mel: np.ndarray, width: int = 160, height: int = 48) -> str:
    """:func:`mel_png_bytes` as a data URI."""
    return "data:image/png;base64," + base64.b64encode(mel_png_bytes(mel, width, height)).decode()


def _thin(xs: np.ndarray, ys: np.ndarray, n: int = CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` points of a drawn curve: the means of ``n`` equal runs of points (keeps
    the file small; a 160 px strip shows no more)."""
    if len(xs) <= n:
        return xs, ys
    edges = np.linspace(0, len(xs), n + 1).astype(int)
    return np.add.reduceat(xs, edges[:-1]) / np.diff(edges), np.add.reduceat(ys, edges[:-1]) / np.diff(edges)


def _points(xs: np.ndarray, c: np.ndarray, height: int) -> str:
    """SVG polyline points of values ``c`` in [0, 1] at ``xs`` px, thinned."""
    xs, c = _thin(np.asarray(xs, dtype=np.float64), np.asarray(c, dtype=np.float64))
    return " ".join(f"{x:.0f},{height - 2 - y * (height - 4):.0f}" for x, y in zip(xs, c, strict=True))


def curve_svg(curve: list, start: float, end: float, duration: float, width: int = 160,
              height: int = 28) -> str:
    """Inline SVG: the per-second highlight curve of the song and the chosen window."""
    if not curve or duration <= 0:
        return ""
    c = np.asarray(curve, dtype=np.float64)
    c = c / c.max() if c.max() > 0 else c
    pts = _points(np.linspace(0, width, len(c)), c, height)
    x0, x1 = width * start / duration, width * min(end, duration) / duration
    return (f'<svg class="curve" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="highlight {start:.0f}-{end:.0f} s of {duration:.0f} s">'
            f'<rect x="{x0:.1f}" y="0" width="{max(x1 - x0, 1):.1f}" height="{height}" class="win"/>'
            f'<polyline points="{pts}" class="line"/></svg>')


def potential_svg(starts, scores, start: float, best_start: float, seconds: float, duration: float,
                  width: int = 160, height: int = 28) -> str:
    """Inline SVG: a song's hit-potential curve (score of the 30 s window starting at each
    time, drawn at the window's middle), the analysed segment and the best window."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) == 0 or duration <= 0:
        return ""
    span = max(duration, seconds)
    lo, hi = float(s.min()), float(s.max())
    c = (s - lo) / (hi - lo) if hi > lo else np.full(len(s), 0.5)
    xs = width * (np.asarray(starts, dtype=np.float64) + seconds / 2) / span
    if len(s) == 1:
        xs, c = np.r_[xs, xs + 1], np.r_[c, c]

    def box(a: float, cls: str) -> str:
        x0, x1 = width * a / span, width * min(a + seconds, span) / span
        return f'<rect x="{x0:.1f}" y="0" width="{max(x1 - x0, 1):.1f}" height="{height}" class="{cls}"/>'

    return (f'<svg class="potential" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="hit potential: best {best_start:.0f}-'
            f'{best_start + seconds:.0f} s, analysed {start:.0f}-{start + seconds:.0f} s of {duration:.0f} s">'
            f'{box(start, "seg")}{box(best_start, "best")}<polyline points="{_points(xs, c, height)}" '
            f'class="line"/></svg>')


def _audio_src(path: str, out_dir: Path, embed: bool) -> str:
    if embed:
        mime = mimetypes.guess_type(path)[0] or "audio/wav"
        return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()
    rel = os.path.relpath(path, out_dir)
    return quote(Path(rel).as_posix())


STORE_CHUNK = 256  # songs whose log-mels are read from the store at once (bounds memory)


def _store_extras(store_dir, song_ids, image: Callable[[int, bytes], str]) -> dict:
    """Per song: the ``src`` of its log-mel image, its highlight curve and its top tags, when
    the store has them. ``image(k, png)`` stores the PNG of ``song_ids[k]`` and returns the
    image's ``src`` (a data URI or a relative link)."""
    if not store_dir or not Path(store_dir, "params.json").exists():
        return {}
    store = FeatureStore.open(store_dir)
    man = store.manifest.drop_duplicates("song_id", keep="last").set_index("song_id")
    ok = set(man.index[man["status"] == "ok"])
    hl = man["curve"].to_dict() if "curve" in man else {}
    todo = [(k, s) for k, s in enumerate(song_ids) if s in ok]
    log = store.params.log
    out = {}
    for c in range(0, len(todo), STORE_CHUNK):
        chunk = todo[c:c + STORE_CHUNK]
        ids = [s for _, s in chunk]
        mels = store.load(ids)
        tags = store.load_tags(ids) if store.has_tags else None
        for j, (k, sid) in enumerate(chunk):
            curve = json.loads(hl[sid]) if isinstance(hl.get(sid), str) and hl[sid] else []
            top = [TAGS[i] for i in np.argsort(-tags[j])[:3]] if tags is not None else []
            out[sid] = {"mel": image(k, mel_png_bytes(to_db(mels[j], log))), "curve": curve, "tags": top}
    return out


class _SideImages:
    """Log-mel PNGs of a large report, written into ``<stem>_files/`` beside it.

    The PNGs go into a fresh temporary folder; :meth:`publish` swaps it with the previous
    run's folder, so a rerun leaves no stale image and a crash leaves the old report whole.
    A folder that holds anything the report did not write is refused, not replaced.
    """

    def __init__(self, out: Path):
        self.folder = out.with_name(f"{out.stem}_files")
        if self.folder.exists():
            foreign = [p.name for p in self.folder.iterdir() if not SIDE_PNG.fullmatch(p.name)]
            if foreign or not self.folder.is_dir():
                raise HitrankError(f"{str(self.folder)!r} holds files the report did not write "
                                   f"(e.g. {foreign[:3]}); move them or write the report under another name")
        self.tmp = self.folder.with_name(f"{self.folder.name}.tmp{os.getpid()}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()

    def __call__(self, k: int, png: bytes) -> str:
        name = f"{k + 1}.png"
        (self.tmp / name).write_bytes(png)
        return quote(f"{self.folder.name}/{name}")

    def publish(self) -> None:
        old = self.folder.with_name(f"{self.folder.name}.old{os.getpid()}")
        if self.folder.exists():
            os.replace(self.folder, old)
        os.replace(self.tmp, self.folder)
        shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _data_uri(_k: int, png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _catalogue_links(paths: dict, out_dir: Path) -> dict:
    """{reference song id: relative, percent-encoded link to its audio} for the files at hand."""
    return {sid: _audio_src(str(p), out_dir, False) for sid, p in paths.items() if p and Path(p).is_file()}


def _nearest_html(r: dict, links: dict | None = None) -> str:
    """The closest reference songs of one row ("closest: A (0.93), B (0.88)": their titles
    where known, else their ids; the cosine; their true hit score where known; a link that
    plays the song where its audio is at hand, ``links``) and its fit to the reference,
    escaped; '' when the ranking has neither."""
    esc = html.escape
    links = links or {}
    ids, sims = split_cell(r.get("nearest")), split_cell(r.get("nearest_similarity"))
    titles, truth = split_cell(r.get("nearest_title")), split_cell(r.get("nearest_score"))
    parts = []
    for i, sid in enumerate(ids[:NEAREST_SHOWN]):
        label = titles[i] if i < len(titles) and titles[i] else sid
        extra = [sims[i]] if i < len(sims) and sims[i] else []
        with_num = []
        for v in extra:
            try:
                with_num.append(f"{float(v):.2f}")
            except ValueError:
                with_num.append(v)
        if i < len(truth) and truth[i]:
            with_num.append(f"hit {_short(truth[i])}")
        name = (f'<a href="{esc(links[sid], quote=True)}" target="_blank">{esc(label)}</a>' if sid in links
                else esc(label))
        parts.append(name + (f" ({esc(', '.join(with_num))})" if with_num else ""))
    near = f'<div class="near">closest: {", ".join(parts)}</div>' if parts else ""
    fit = r.get("fit")
    fit_html = (f'<div class="fit">fit <b>{float(fit):.0f}</b>/100</div>'
                if fit is not None and pd.notna(fit) else "")
    return fit_html + near


def _num(value, default: float) -> float:
    """A cell's number: ``default`` for missing values."""
    return float(value) if value is not None and pd.notna(value) and value != "" else default


def _key(value) -> float | None:
    """A sort key for the page's JSON (None for missing values)."""
    return round(float(value), 6) if value is not None and pd.notna(value) and np.isfinite(value) else None


def _json_block(rows: list) -> str:
    """The rows ``[rank, score, best, pct, fit, name, html]`` as JSON that is safe inside a
    ``<script type="application/json">`` element: the names with ``<``, ``>`` and ``&`` as
    JSON escapes, the (already escaped) row HTML without ``</`` and ``<!--``, the only
    sequences that end or confuse script data."""

    def dump(v) -> str:
        return json.dumps(v, ensure_ascii=False, allow_nan=False)

    def name(v: str) -> str:
        return dump(v).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    def markup(v) -> str:
        return dump(v).replace("</", "<\\/").replace("<!--", "<\\u0021--")

    return "[" + ",".join(f"[{','.join(dump(x) for x in r[:5])},{name(r[5])},{markup(r[6])}]"
                          for r in rows) + "]"


def write_ranking_report(ranking: pd.DataFrame, failures: list, out: str | os.PathLike, model: str,
                         store_dir=None, embed_audio: bool = False, artists: dict | None = None) -> Path:
    """Write the HTML report of a ranking (the DataFrame of :func:`hitrank.rank.rank_folder`).

    Parameters
    ----------
    ranking : rows best first with ``rank, song_id, path, score`` and optionally
        ``score_std, seg_start, seg_end, duration, artist, title, flags, percentile,
        percentile_lo, percentile_hi`` and the neighbour columns ``nearest,
        nearest_similarity, nearest_title, nearest_score`` (';'-separated, closest first)
        and ``fit`` (0-100)
    failures : (song_id, path, reason) of files that could not be ranked
    out : the .html file to write (atomically)
    model : the run folder or checkpoint, shown in the header
    store_dir : the feature store of the ranked songs (log-mel images, curves, tags)
    embed_audio : put the audio inside the file (refused over 50 MB in all); the images are
        then inlined too, whatever the number of songs
    artists : optional song_id -> artist

    Returns
    -------
    out : the report; with more than :data:`INLINE_IMAGES_MAX` songs (and no
        ``embed_audio``) its log-mel PNGs are in ``<stem>_files/`` beside it
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    attrs = dict(ranking.attrs)
    # the same table without attrs: pandas deep-copies attrs (a curve per song) on every access
    ranking = pd.DataFrame(ranking.to_numpy(dtype=object), columns=ranking.columns).infer_objects()
    if embed_audio:
        total = sum(Path(p).stat().st_size for p in ranking["path"] if Path(p).is_file())
        if total > EMBED_LIMIT:
            raise HitrankError(f"--embed-audio: {total / 2**20:.0f} MB of audio is over the "
                               f"{EMBED_LIMIT // 2**20} MB limit; leave it out (relative links)")
    side = None if embed_audio or len(ranking) <= INLINE_IMAGES_MAX else _SideImages(out)
    try:
        extras = _store_extras(store_dir, [str(s) for s in ranking["song_id"]], side or _data_uri)
        page = _page(ranking, attrs, failures, out, model, extras, embed_audio, artists or {})
        if side is not None:
            side.publish()
    except BaseException:
        if side is not None:
            side.discard()
        raise
    atomic_write_text(out, page)
    return out


def _row(r: dict, ex: dict, pc, out_dir: Path, embed_audio: bool, artist: str, ref_name: str,
         has_pct: bool, frac: float, near_col: bool, links: dict | None = None, analysed: str | None = None) -> str:
    """One song's ``<tr>``, every name escaped; ``analysed``: what was analysed, in words, for
    rankings without a segment (``seg_start``: a model of whole songs), else None."""
    esc = html.escape
    sid, path = str(r["song_id"]), str(r["path"])
    start = _num(r.get("seg_start"), 0.0)
    end = _num(r.get("seg_end"), start + 30)
    dur = _num(r.get("duration"), 0.0)
    segment = f"{start:.0f}-{end:.0f} s" if analysed is None else analysed
    std = _num(r.get("score_std"), 0.0)
    spread = f' <span class="sd">&plusmn; {std:.3f}</span>' if std > 0 else ""
    src = _audio_src(path, out_dir, embed_audio) if Path(path).is_file() else ""
    audio = (f'<audio controls preload="none" src="{esc(src, quote=True)}#t={start:.1f}"></audio>'
             if src else "")
    title = _text(r.get("title"))
    img = f'<img class="mel" loading="lazy" alt="log-mel (dB)" src="{ex["mel"]}">' if ex.get("mel") else ""
    curve = curve_svg(ex.get("curve", []), start, end, dur)
    jumps = ""
    if pc is not None:
        curve += potential_svg(pc.starts, pc.scores, start, pc.best_start, pc.seconds, dur)
        if audio:
            jumps = (f'<button class="jump seg" data-jump="{start:.1f}">segment {start:.0f}-{end:.0f} s'
                     f'</button><button class="jump best" data-jump="{pc.best_start:.1f}">'
                     f'best {pc.best_start:.0f}-{pc.best_end:.0f} s</button>')
    pct = ""
    if has_pct and pd.notna(r.get("percentile", np.nan)):
        words = describe(float(r["percentile"]), float(r["percentile_lo"]), float(r["percentile_hi"]), ref_name)
        pct = f'<div class="pct">{esc(words)}</div>'
    tags = esc(", ".join(ex.get("tags", [])))
    flags = "".join(f' <span class="flag" title="{esc(FLAG_HELP.get(f, f), quote=True)}">{esc(f)}</span>'
                    for f in str(r.get("flags") or "").split("; ") if f)
    if r.get(NEW_KEY):
        flags = f' <span class="flag new" title="{NEW_HELP}">new</span>' + flags
    near = f'<td class="near">{_nearest_html(r, links)}</td>' if near_col else ""
    return (f'<tr data-rank="{int(r["rank"])}">'
            f'<td class="num">{int(r["rank"])}</td><td class="name" title="{esc(path, quote=True)}">{esc(sid)}{flags}'
            + (f'<div class="title">{esc(title)}</div>' if title else "") + '</td>'
            f'<td>{esc(artist)}</td>'
            f'<td class="score"><div class="bar" style="width:{100 * frac:.1f}%"></div>'
            f'<span>{float(r["score"]):+.3f}</span>{spread}{pct}</td>'
            f'<td class="seg">{esc(segment)}</td><td>{audio}{jumps}</td><td>{img}{curve}</td>'
            f'<td class="tags">{tags}</td>{near}</tr>')


def _page(ranking: pd.DataFrame, attrs: dict, failures: list, out: Path, model: str, extras: dict,
          embed_audio: bool, artists: dict) -> str:
    """The report's HTML text: the first page's rows as HTML, all rows in the JSON block."""
    esc = html.escape
    curves = attrs.get("curves", {})
    ref_name = str(attrs.get("reference", ""))
    has_pct = "percentile" in ranking and bool(ranking["percentile"].notna().any())
    near_col = (("nearest" in ranking and bool(ranking["nearest"].map(lambda v: bool(split_cell(v))).any()))
                or ("fit" in ranking and bool(pd.to_numeric(ranking["fit"], errors="coerce").notna().any())))
    scores = ranking["score"].to_numpy(dtype=float) if len(ranking) else np.zeros(0)
    lo, hi = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
    links = _catalogue_links(attrs.get("catalogue_paths", {}), out.parent) if near_col else {}
    # a model of whole songs (a transfer run's song embedding, descriptors) analysed no segment
    analysed = None if "seg_start" in ranking else str(attrs.get("analysed") or "-")
    players = ("players start at the analysed 30 s segment (the highlight for HL-30 models)"
               if analysed is None else f"players start at the beginning (analysed: {esc(analysed)})")
    new_ids = set((attrs.get("since") or {}).get("new_songs", []))  # rank --since: badged "new"
    first, data = [], []
    for k, r in enumerate(ranking.to_dict("records")):
        sid = str(r["song_id"])
        r[NEW_KEY] = sid in new_ids
        artist = artists.get(sid, "") or _text(r.get("artist"))
        pc = curves.get(sid)
        frac = 0.0 if hi == lo else (float(r["score"]) - lo) / (hi - lo)
        row = _row(r, extras.get(sid, {}), pc, out.parent, embed_audio, artist, ref_name, has_pct, frac, near_col,
                   links, analysed)
        if k < PAGE_ROWS:
            first.append(row)
        name = (sid + " " + artist + " " + _text(r.get("title"))).lower()
        pct = r.get("percentile") if has_pct else None
        # rank, score, best, pct, fit, name, html (0: the row is in the page's HTML already)
        data.append([int(r["rank"]), _key(r["score"]), _key(pc.best_score) if pc is not None else None,
                     _key(pct), _key(r.get("fit")), name, 0 if k < PAGE_ROWS else row])
    fail_rows = "".join(f"<tr><td>{esc(str(s))}</td><td>{esc(str(p))}</td><td>{esc(str(e))}</td></tr>"
                        for s, p, e in failures)
    failed = (f'<h2>{len(failures)} file(s) could not be ranked</h2><table class="fail"><thead><tr>'
              f"<th>song</th><th>path</th><th>reason</th></tr></thead><tbody>{fail_rows}</tbody></table>"
              if failures else "")
    notes = []
    if ref_name:
        notes.append(f"percentiles against {esc(ref_name)}" if has_pct else f"no percentile: {esc(ref_name)}")
    if curves:
        notes.append("curve: score of the 30 s window at each time (yellow: analysed segment, "
                     "green: best window)")
    if near_col:
        of = f" among {esc(str(attrs['neighbours']))}" if attrs.get("neighbours") else ""
        notes.append(f"closest: the songs nearest in sound{of} (cosine similarity of song embeddings "
                     "centred on that catalogue, with their true hit score when known); fit: how typical "
                     "of that catalogue the song is, as a percentile of its own songs, 0-100")
    if attrs.get("since"):
        c = attrs["since"]
        notes.append(f"{c['new']} song(s) ranked in this run (marked new), {c['kept']} kept from the previous ranking, "
                     f"{c['dropped']} no longer in the folder")
    if "ood_note" in ranking and len(ranking) and str(ranking["ood_note"].iloc[0]):
        notes.append(esc(str(ranking["ood_note"].iloc[0])))
    near_head = ('<th data-key="fit" title="fit to the reference catalogue, 0-100">fit &middot; closest</th>'
                 if near_col else "")
    return TEMPLATE.format(
        notes="".join(f"<div class=\"meta\">{n}</div>" for n in notes),
        title=esc(f"hitrank ranking: {Path(str(model)).name}"), model=esc(str(model)),
        when=time.strftime("%Y-%m-%d %H:%M"), n=len(ranking), rows="\n".join(first), failed=failed,
        n_failed=len(failures), script=SCRIPT, style=STYLE, near_head=near_head, page_rows=PAGE_ROWS, players=players,
        data=_json_block(data))


def _short(value: str) -> str:
    """A number written in a CSV cell, to 4 significant digits for reading (``0.586957`` ->
    ``0.587``); text that is not a number as it is."""
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return value


def _text(value) -> str:
    """A cell's text: '' for missing values."""
    return value if isinstance(value, str) else ""


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .2em} .meta{color:#666;margin-bottom:1em}
input#q{padding:.3em .5em;width:20em;margin-bottom:.6em}
table{border-collapse:collapse;width:100%} th,td{padding:.25em .5em;border-bottom:1px solid #eee;vertical-align:middle}
th{background:#f6f6f6;text-align:left;user-select:none;position:sticky;top:0} th[data-key]{cursor:pointer}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
td.num{text-align:right;width:3em} td.name{max-width:22em;overflow-wrap:anywhere}
td.score{position:relative;width:9em} td.score .bar{position:absolute;left:0;top:20%;height:60%;background:#cde6dc;z-index:-1}
.sd{color:#888;font-size:.85em} img.mel{display:block;width:160px;height:48px;image-rendering:pixelated;border-radius:2px}
svg.curve,svg.potential{width:160px;height:28px}
svg.curve .line{fill:none;stroke:#1b7f6a;stroke-width:1.2} svg.curve .win{fill:#f5d76e;opacity:.6}
svg.potential{display:block} svg.potential .line{fill:none;stroke:#333;stroke-width:1.2}
svg.potential .seg{fill:#f5d76e;opacity:.6} svg.potential .best{fill:#8fd19e;opacity:.6}
.pct{color:#555;font-size:.8em} .title{color:#555;font-size:.85em}
td.near{font-size:.85em;color:#444;max-width:24em} .fit b{font-size:1.1em;color:#222}
button.jump{font-size:.75em;margin:.1em .2em 0 0;padding:0 .4em;cursor:pointer}
audio{height:28px;width:14em} .tags{color:#555;font-size:.9em} table.fail td{color:#a33}
.flag{display:inline-block;font-size:.75em;background:#fbe3c9;color:#8a4b08;border-radius:3px;padding:0 .35em;margin-left:.3em}
.flag.new{background:#d6ecff;color:#0b4f8a}
nav.pages{margin:.5em 0} nav.pages input{width:4em} nav.pages button{padding:0 .6em}
"""

# The rows live in the JSON block #data as [rank, score, best, pct, fit, name, html]; html is 0
# for the first page, whose rows are in the table already. Only the shown page's rows are DOM
# nodes (made from the server-escaped HTML, which holds no script); sorting and the search run
# over every song.
SCRIPT = """
(function(){
  var table=document.getElementById('ranking'), tbody=table.tBodies[0];
  var per=parseInt(table.dataset.pageRows,10);
  var data=JSON.parse(document.getElementById('data').textContent);
  var KEYS={rank:0,score:1,best:2,pct:3,fit:4,name:5};
  var nodes=new Array(data.length), tpl=document.createElement('template');
  Array.prototype.forEach.call(tbody.rows,function(tr,k){nodes[k]=tr;});
  function node(i){
    if(!nodes[i]){tpl.innerHTML=data[i][6];nodes[i]=tpl.content.firstElementChild;}
    return nodes[i];}
  var heads=document.querySelectorAll('#ranking th[data-key]');
  var st={sort:'rank',dir:'asc',q:'',page:1};
  function order(){
    var q=st.q.toLowerCase(), idx=[];
    for(var i=0;i<data.length;i++){if(data[i][5].indexOf(q)>=0){idx.push(i);}}
    var k=KEYS[st.sort], sign=st.dir==='asc'?1:-1;
    if(k===undefined){return idx;}
    idx.sort(function(a,b){
      var x=data[a][k], y=data[b][k];
      if(k!==5){x=(x===null)?-Infinity:x;y=(y===null)?-Infinity:y;}
      return sign*(x<y?-1:x>y?1:0)||a-b;});
    return idx;}
  function render(){
    var idx=order(), pages=Math.max(1,Math.ceil(idx.length/per));
    st.page=Math.min(Math.max(1,st.page|0),pages);
    var from=(st.page-1)*per, shown=idx.slice(from,from+per).map(node);
    tbody.replaceChildren.apply(tbody,shown);
    document.getElementById('shown').textContent=idx.length;
    document.querySelectorAll('nav.pages').forEach(function(n){
      n.querySelector('input').value=st.page; n.querySelector('input').max=pages;
      n.querySelector('.of').textContent=pages;
      n.querySelector('.prev').disabled=st.page<=1; n.querySelector('.next').disabled=st.page>=pages;});
    heads.forEach(function(h){h.classList.remove('sorted-asc','sorted-desc');
      if(h.dataset.key===st.sort){h.classList.add('sorted-'+st.dir);}});
    document.body.dataset.sort=st.sort+':'+st.dir;
    document.body.dataset.page=st.page;
    var p=new URLSearchParams({sort:st.sort,dir:st.dir,page:st.page});
    if(st.q){p.set('q',st.q);}
    try{history.replaceState(null,'','#'+p.toString());}catch(e){}
  }
  function fromHash(){
    var p=new URLSearchParams(location.hash.slice(1));
    st.sort=p.get('sort')||'rank';
    st.dir=p.get('dir')||(p.get('sort')?'desc':'asc');
    st.q=p.get('q')||''; st.page=parseInt(p.get('page')||'1',10)||1;
    document.getElementById('q').value=st.q; render();}
  tbody.addEventListener('click',function(e){
    var b=e.target.closest('button.jump'); if(!b){return;}
    var a=b.closest('tr').querySelector('audio'); if(!a){return;}
    a.currentTime=parseFloat(b.dataset.jump); a.play();});
  heads.forEach(function(h){h.addEventListener('click',function(){
    var key=h.dataset.key, cur=st.sort+':'+st.dir;
    st.dir=(cur===key+':desc')?'asc':(cur===key+':asc')?'desc':(key==='rank'||key==='name'?'asc':'desc');
    st.sort=key; st.page=1; render();});});
  document.getElementById('q').addEventListener('input',function(e){st.q=e.target.value;st.page=1;render();});
  document.querySelectorAll('nav.pages').forEach(function(n){
    n.querySelector('.prev').addEventListener('click',function(){st.page--;render();window.scrollTo(0,0);});
    n.querySelector('.next').addEventListener('click',function(){st.page++;render();window.scrollTo(0,0);});
    n.querySelector('input').addEventListener('change',function(e){st.page=parseInt(e.target.value,10)||1;render();});});
  window.addEventListener('hashchange',fromHash);
  fromHash();
})();
"""

NAV = ('<nav class="pages"><button type="button" class="prev">&lsaquo; previous</button> page '
       '<input type="number" min="1" value="1" aria-label="page"> of <span class="of">1</span> '
       '<button type="button" class="next">next &rsaquo;</button></nav>')

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body>
<h1>{title}</h1>
<div class="meta">model <code>{model}</code> &middot; {n} songs ranked, {n_failed} failed &middot; {when}
&middot; {players}</div>
{notes}
<input id="q" type="search" placeholder="filter by name" aria-label="filter by name">
<span class="meta"><span id="shown">{n}</span> shown, {page_rows} per page</span>
""" + NAV + """
<table id="ranking" data-page-rows="{page_rows}"><thead><tr>
<th data-key="rank">rank</th><th data-key="name">song</th><th>artist</th>
<th data-key="score">score</th><th>segment</th><th>listen</th><th>log-mel (dB) &middot; curves</th><th>top tags</th>
{near_head}</tr></thead><tbody>
{rows}
</tbody></table>
""" + NAV + """
<noscript><p class="meta">Sorting, search and the pages after the first need JavaScript.</p></noscript>
{failed}
<script type="application/json" id="data">{data}</script>
<script>{script}</script>
</body></html>
"""
