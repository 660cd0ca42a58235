"""Self-contained HTML ranking report (``hitrank rank FOLDER --model RUN --html report.html``).

One file, no CDN, works offline: a sortable, filterable table of the ranked songs (rank,
name, artist, score with a bar and the fold-ensemble spread), an audio player per song that
starts at the analysed 30 s segment (the highlight for HL-30 models; the audio is referenced
by a relative path, or embedded with ``embed_audio``), a small image of the segment's
log-mel, the per-second highlight curve with the chosen window (HL-30), the top tags when
the store has them, and the files that failed. With ``--curve`` each song's hit-potential
curve is drawn under its log-mel strip with the analysed segment and the best window marked,
and the player jumps to either. With a reference, the percentile in words ("higher than 87%
[78, 93] of the 200 training songs of runs/ab"). Log-mel strips are drawn in decibels
whatever the model's input scale (raw power for the authors' KKBOX model). Every name, path and tag is HTML-escaped;
URLs are percent-encoded; the page runs no code from the data.

Sorting and filtering can also be set from the URL (``report.html#sort=score&dir=asc&q=abc``)
so that a headless browser test can check them.
"""

from __future__ import annotations

import base64
import html
import json
import mimetypes
import os
import struct
import time
import zlib
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from .constants import DB_AMIN, LOG1P_SCALE
from .errors import HitrankError
from .fileio import atomic_write_text
from .reference import describe
from .store import FeatureStore
from .tags import TAGS

EMBED_LIMIT = 50 * 2**20  # bytes of audio embedded at most (base64 grows it by a third)
FLAG_HELP = {"silent": "the analysed segment is digital silence: ranked last",
             "padded": "shorter than the 30 s segment by at least 5% of it: zero-padded",
             "out_of_distribution": "its features lie far from the training songs': treat the score with care",
             "unstable": "moving the 30 s window by up to 1 s changes the score by more than a quarter "
                         "of the spread between songs: treat the score with care"}


def _png(rgb: np.ndarray) -> bytes:
    """Encode an (h, w, 3) uint8 image as PNG (zlib only; no imaging library needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


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


def mel_png(mel: np.ndarray, width: int = 160, height: int = 48) -> str:
    """A small data-URI PNG of a log-mel in dB (n_mels, T), low frequencies at the bottom."""
    m = np.asarray(mel, dtype=np.float32)
    lo, hi = np.percentile(m, 2), np.percentile(m, 99.5)
    m = (m - lo) / max(hi - lo, 1e-6)
    rows = np.linspace(0, m.shape[0] - 1, height).astype(int)[::-1]
    cols = np.linspace(0, m.shape[1] - 1, width).astype(int)
    png = _png(_colour(m[np.ix_(rows, cols)]))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def curve_svg(curve: list, start: float, end: float, duration: float, width: int = 160,
              height: int = 28) -> str:
    """Inline SVG: the per-second highlight curve of the song and the chosen window."""
    if not curve or duration <= 0:
        return ""
    c = np.asarray(curve, dtype=np.float64)
    c = c / c.max() if c.max() > 0 else c
    xs = np.linspace(0, width, len(c))
    pts = " ".join(f"{x:.1f},{height - 2 - y * (height - 4):.1f}" for x, y in zip(xs, c, strict=True))
    x0, x1 = width * start / duration, width * min(end, duration) / duration
    return (f'<svg class="curve" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
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
    xs = width * (np.asarray(starts) + seconds / 2) / span
    pts = " ".join(f"{x:.1f},{height - 2 - y * (height - 4):.1f}" for x, y in zip(xs, c, strict=True))
    if len(s) == 1:
        pts += f" {xs[0] + 1:.1f},{height - 2 - c[0] * (height - 4):.1f}"

    def box(a: float, cls: str) -> str:
        x0, x1 = width * a / span, width * min(a + seconds, span) / span
        return f'<rect x="{x0:.1f}" y="0" width="{max(x1 - x0, 1):.1f}" height="{height}" class="{cls}"/>'

    return (f'<svg class="potential" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="hit-potential curve: best window {best_start:.0f}-'
            f'{best_start + seconds:.0f} s, analysed {start:.0f}-{start + seconds:.0f} s of {duration:.0f} s">'
            f'{box(start, "seg")}{box(best_start, "best")}<polyline points="{pts}" class="line"/></svg>')


def _audio_src(path: str, out_dir: Path, embed: bool) -> str:
    if embed:
        mime = mimetypes.guess_type(path)[0] or "audio/wav"
        return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()
    rel = os.path.relpath(path, out_dir)
    return quote(Path(rel).as_posix())


def _store_extras(store_dir, song_ids) -> dict:
    """Per song: the log-mel segment, the highlight curve and the top tags, when available."""
    if not store_dir or not Path(store_dir, "params.json").exists():
        return {}
    store = FeatureStore.open(store_dir)
    man = store.manifest.set_index("song_id")
    ids = [s for s in song_ids if s in man.index and man.loc[s, "status"] == "ok"]
    if not ids:
        return {}
    mels = store.load(ids)
    log = store.params.log
    tags = store.load_tags(ids) if store.has_tags else None
    out = {}
    for k, sid in enumerate(ids):
        rec = man.loc[sid]
        curve = json.loads(rec["curve"]) if isinstance(rec.get("curve"), str) and rec["curve"] else []
        top = [TAGS[i] for i in np.argsort(-tags[k])[:3]] if tags is not None else []
        out[sid] = {"mel": mel_png(to_db(mels[k], log)), "curve": curve, "tags": top}
    return out


def write_ranking_report(ranking: pd.DataFrame, failures: list, out: str | os.PathLike, model: str,
                         store_dir=None, embed_audio: bool = False, artists: dict | None = None) -> Path:
    """Write the HTML report of a ranking (the DataFrame of :func:`hitrank.rank.rank_folder`).

    Parameters
    ----------
    ranking : rows best first with ``rank, song_id, path, score`` and optionally
        ``score_std, seg_start, seg_end, duration``
    failures : (song_id, path, reason) of files that could not be ranked
    out : the .html file to write (atomically)
    model : the run folder or checkpoint, shown in the header
    store_dir : the feature store of the ranked songs (log-mel images, curves, tags)
    embed_audio : put the audio inside the file (refused over 50 MB in all)
    artists : optional song_id -> artist
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    if embed_audio:
        total = sum(Path(p).stat().st_size for p in ranking["path"] if Path(p).is_file())
        if total > EMBED_LIMIT:
            raise HitrankError(f"--embed-audio: {total / 2**20:.0f} MB of audio is over the "
                               f"{EMBED_LIMIT // 2**20} MB limit; leave it out (relative links)")
    extras = _store_extras(store_dir, list(ranking["song_id"]))
    curves = ranking.attrs.get("curves", {})
    ref_name = str(ranking.attrs.get("reference", ""))
    has_pct = "percentile" in ranking and bool(ranking["percentile"].notna().any())
    scores = ranking["score"].to_numpy(dtype=float) if len(ranking) else np.zeros(0)
    lo, hi = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
    rows = []
    for r in ranking.to_dict("records"):
        sid, path = str(r["song_id"]), str(r["path"])
        ex = extras.get(sid, {})
        start = float(r.get("seg_start") or 0.0) if pd.notna(r.get("seg_start", np.nan)) else 0.0
        end = float(r.get("seg_end") or start + 30) if pd.notna(r.get("seg_end", np.nan)) else start + 30
        dur = float(r.get("duration") or 0.0) if pd.notna(r.get("duration", np.nan)) else 0.0
        frac = 0.0 if hi == lo else (float(r["score"]) - lo) / (hi - lo)
        std = float(r.get("score_std") or 0.0) if pd.notna(r.get("score_std", np.nan)) else 0.0
        spread = f' <span class="sd">&plusmn; {std:.3f}</span>' if std > 0 else ""
        src = _audio_src(path, out.parent, embed_audio) if Path(path).is_file() else ""
        audio = (f'<audio controls preload="none" src="{esc(src, quote=True)}#t={start:.1f}"></audio>'
                 if src else "")
        artist = (artists or {}).get(sid, "") or _text(r.get("artist"))
        title = _text(r.get("title"))
        img = f'<img class="mel" alt="log-mel of the segment (dB)" src="{ex["mel"]}">' if ex.get("mel") else ""
        curve = curve_svg(ex.get("curve", []), start, end, dur)
        pc = curves.get(sid)
        jumps, best_attr = "", ""
        if pc is not None:
            curve += potential_svg(pc.starts, pc.scores, start, pc.best_start, pc.seconds, dur)
            if audio:
                jumps = (f'<button type="button" class="jump seg" data-jump="{start:.1f}">segment {start:.0f}-{end:.0f} s'
                         f'</button><button type="button" class="jump best" data-jump="{pc.best_start:.1f}">'
                         f'best {pc.best_start:.0f}-{pc.best_end:.0f} s</button>')
            best_attr = f' data-best="{pc.best_score:.6f}"'
        pct = ""
        if has_pct and pd.notna(r.get("percentile", np.nan)):
            words = describe(float(r["percentile"]), float(r["percentile_lo"]), float(r["percentile_hi"]), ref_name)
            pct = f'<div class="pct">{esc(words)}</div>'
            best_attr += f' data-pct="{float(r["percentile"]):.3f}"'
        tags = esc(", ".join(ex.get("tags", [])))
        flags = "".join(f' <span class="flag" title="{esc(FLAG_HELP.get(f, f), quote=True)}">{esc(f)}</span>'
                        for f in str(r.get("flags") or "").split("; ") if f)
        rows.append(
            f'<tr data-rank="{int(r["rank"])}" data-score="{float(r["score"]):.6f}" '
            f'data-name="{esc((sid + " " + artist + " " + title).lower(), quote=True)}"{best_attr}>'
            f'<td class="num">{int(r["rank"])}</td><td class="name" title="{esc(path, quote=True)}">{esc(sid)}{flags}'
            + (f'<div class="title">{esc(title)}</div>' if title else "") + '</td>'
            f'<td>{esc(artist)}</td>'
            f'<td class="score"><div class="bar" style="width:{100 * frac:.1f}%"></div>'
            f'<span>{float(r["score"]):+.3f}</span>{spread}{pct}</td>'
            f'<td class="seg">{start:.0f}-{end:.0f} s</td><td>{audio}{jumps}</td><td>{img}{curve}</td>'
            f'<td class="tags">{tags}</td></tr>')
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
    if "ood_note" in ranking and len(ranking) and str(ranking["ood_note"].iloc[0]):
        notes.append(esc(str(ranking["ood_note"].iloc[0])))
    page = TEMPLATE.format(
        notes="".join(f"<div class=\"meta\">{n}</div>" for n in notes),
        title=esc(f"hitrank ranking: {Path(str(model)).name}"), model=esc(str(model)),
        when=time.strftime("%Y-%m-%d %H:%M"), n=len(ranking), rows="\n".join(rows), failed=failed,
        n_failed=len(failures), script=SCRIPT, style=STYLE)
    atomic_write_text(out, page)
    return out


def _text(value) -> str:
    """A cell's text: '' for missing values."""
    return value if isinstance(value, str) else ""


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .2em} .meta{color:#666;margin-bottom:1em}
input#q{padding:.3em .5em;width:20em;margin-bottom:.6em}
table{border-collapse:collapse;width:100%} th,td{padding:.25em .5em;border-bottom:1px solid #eee;vertical-align:middle}
th{background:#f6f6f6;text-align:left;cursor:pointer;user-select:none;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
td.num{text-align:right;width:3em} td.name{max-width:22em;overflow-wrap:anywhere}
td.score{position:relative;width:9em} td.score .bar{position:absolute;left:0;top:20%;height:60%;background:#cde6dc;z-index:-1}
.sd{color:#888;font-size:.85em} img.mel{display:block;image-rendering:pixelated;border-radius:2px}
svg.curve .line{fill:none;stroke:#1b7f6a;stroke-width:1.2} svg.curve .win{fill:#f5d76e;opacity:.6}
svg.potential{display:block} svg.potential .line{fill:none;stroke:#333;stroke-width:1.2}
svg.potential .seg{fill:#f5d76e;opacity:.6} svg.potential .best{fill:#8fd19e;opacity:.6}
.pct{color:#555;font-size:.8em} .title{color:#555;font-size:.85em}
button.jump{font-size:.75em;margin:.1em .2em 0 0;padding:0 .4em;cursor:pointer}
audio{height:28px;width:14em} .tags{color:#555;font-size:.9em} table.fail td{color:#a33}
.flag{display:inline-block;font-size:.75em;background:#fbe3c9;color:#8a4b08;border-radius:3px;padding:0 .35em;margin-left:.3em}
"""

SCRIPT = """
(function(){
  var tbody=document.querySelector('#ranking tbody');
  var heads=document.querySelectorAll('#ranking th[data-key]');
  function rows(){return Array.prototype.slice.call(tbody.rows);}
  function sortBy(key,dir){
    var r=rows(), num=(key!=='name');
    r.sort(function(a,b){
      var x=a.dataset[key], y=b.dataset[key];
      if(num){x=parseFloat(x);y=parseFloat(y);if(isNaN(x)){x=-Infinity;}if(isNaN(y)){y=-Infinity;}}
      var c=x<y?-1:x>y?1:0; return dir==='asc'?c:-c;});
    r.forEach(function(row){tbody.appendChild(row);});
    heads.forEach(function(h){h.classList.remove('sorted-asc','sorted-desc');
      if(h.dataset.key===key){h.classList.add('sorted-'+dir);}});
    document.body.dataset.sort=key+':'+dir;
  }
  function filter(q){
    q=(q||'').toLowerCase(); var shown=0;
    rows().forEach(function(row){var ok=row.dataset.name.indexOf(q)>=0; row.style.display=ok?'':'none'; if(ok)shown++;});
    document.getElementById('shown').textContent=shown;
  }
  tbody.addEventListener('click',function(e){
    var b=e.target.closest('button.jump'); if(!b){return;}
    var a=b.closest('tr').querySelector('audio'); if(!a){return;}
    a.currentTime=parseFloat(b.dataset.jump); a.play();});
  heads.forEach(function(h){h.addEventListener('click',function(){
    var cur=document.body.dataset.sort||'', key=h.dataset.key;
    var dir=(cur===key+':desc')?'asc':(cur===key+':asc')?'desc':(key==='rank'||key==='name'?'asc':'desc');
    sortBy(key,dir);});});
  var q=document.getElementById('q'); q.addEventListener('input',function(){filter(q.value);});
  var p=new URLSearchParams(location.hash.slice(1));
  if(p.get('sort')){sortBy(p.get('sort'),p.get('dir')||'desc');}
  if(p.get('q')){q.value=p.get('q');filter(p.get('q'));}
})();
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body>
<h1>{title}</h1>
<div class="meta">model <code>{model}</code> &middot; {n} songs ranked, {n_failed} failed &middot; {when}
&middot; players start at the analysed 30 s segment (the highlight for HL-30 models)</div>
{notes}
<input id="q" type="search" placeholder="filter by name" aria-label="filter by name">
<span class="meta"><span id="shown">{n}</span> shown</span>
<table id="ranking"><thead><tr>
<th data-key="rank">rank</th><th data-key="name">song</th><th>artist</th>
<th data-key="score">score</th><th>segment</th><th>listen</th><th>log-mel (dB) &middot; curves</th><th>top tags</th>
</tr></thead><tbody>
{rows}
</tbody></table>
{failed}
<script>{script}</script>
</body></html>
"""
