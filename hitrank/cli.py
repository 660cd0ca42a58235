"""Command line: ``hitrank COMMAND ...`` (argument parsing and printing only; no logic).

Exit codes: 0 everything worked; 1 the command ran but some inputs failed (listed at the end);
2 bad usage, config or input that stopped the command before any work, or an OS error (full
disk) that stopped it midway; 130 interrupted (Ctrl-C; re-run the same command to resume).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__, segments, tags
from .descriptors.extractors import EXTRACTORS
from .errors import HitrankError

log = logging.getLogger("hitrank")

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("-q", "--quiet", action="store_true", help="only errors; no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _sub(subs, name, help_, examples, parents):
    help_ = help_.replace("%", "%%")  # argparse formats help strings with %
    return subs.add_parser(
        name, help=help_, description=help_, parents=parents,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def get_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (plug-ins of ``$HITRANK_PLUGINS`` are imported
    first, so their segment methods and taggers are among the choices)."""
    from .runtime import import_plugins

    import_plugins()
    common = _common()
    parser = argparse.ArgumentParser(
        prog="hitrank",
        description="Rank songs by how likely they are to be hits, from their audio.",
        epilog=__doc__.split("\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hitrank {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _sub(subs, "synth", "write a synthetic pop corpus (audio, labels.csv, truth.csv)",
             ["hitrank synth corpus/ --songs 500", "hitrank synth c/ --songs 20 --format mp3 --stereo"],
             [common])
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--songs", type=int, default=100, help="number of songs (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--format", default="wav", choices=["wav", "flac", "mp3", "ogg"])
    p.add_argument("--sr", type=int, default=44100, help="sample rate in Hz (default 44100)")
    p.add_argument("--stereo", action="store_true", help="write stereo files")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    p = _sub(subs, "extract", "extract Mid-30 or HL-30 log-mel features of a folder or labels CSV into a store",
             ["hitrank extract corpus/ --out store/", "hitrank extract corpus/labels.csv --out store/ --workers 2",
              "hitrank extract corpus/labels.csv --out store_tags/ --tags",
              "hitrank extract catalogue.csv --out store/ --engine ray --address auto"],
             [common])
    p.add_argument("source", type=Path, help="folder of audio files (recursive) or labels CSV")
    p.add_argument("--out", type=Path, required=True, help="feature store folder")
    p.add_argument("--segment", default="mid30", choices=segments.names(),
                   help="which 30 s: " + "; ".join(f"{n}: {segments.get(n).help}" for n in segments.names()))
    p.add_argument("--highlighter", type=Path,
                   help="hl30: attention highlighter checkpoint (default: the training-free fallback)")
    p.add_argument("--window", default="hamming", choices=["hamming", "hann"],
                   help="STFT window (paper: hamming; the authors' code: hann)")
    p.add_argument("--log", default="db", choices=["db", "log1p", "none"], help="log scaling (default db)")
    p.add_argument("--tags", nargs="?", const="segment", default="", choices=["segment", "song"],
                   help="also store the 50 MTT tag probabilities of the 30 s segment (default when "
                        "given) or of the whole song")
    p.add_argument("--tagger", default="musicnn", choices=list(tags.TAGGERS),
                   help="with --tags: " + "; ".join(f"{n}: {t.about}" for n, t in tags.TAGGERS.items())
                        + " (default musicnn; jynet needs `hitrank pretrained import`)")
    _engine_args(p, "worker processes (default 1; with --engine ray: CPUs of the local Ray "
                    "instance, default all)")
    p.add_argument("--allow-outside", action="store_true",
                   help="let a labels CSV point at files outside its folder")
    for name, help_, ex in (
        ("train", "train one model from a config (validation split for early stopping)",
         ["hitrank train --config configs/table1/a_simple_cnn_mid30.yaml --store store/ --out runs/a",
          "hitrank train --config configs/table1/i_siamese_ab_hl30.yaml --labels corpus/labels.csv "
          "--out runs/i --set features.segment=mid30 --set train.epochs=5"]),
        ("cv", "k-fold cross-validation from a config; nDCG / Kendall / Spearman @10%",
         ["hitrank cv --config configs/table1/a_simple_cnn_mid30.yaml --store store/ --out runs/a",
          "hitrank cv --config configs/demo/siamese_ab.yaml --labels corpus/labels.csv --out runs/ab --folds 5",
          "hitrank cv --config configs/descriptors/topify_smote.yaml --data ../shared/data/spotify_hit_predictor --out runs/topify"]),
    ):
        p = _sub(subs, name, help_, ex, [common])
        p.add_argument("--config", type=Path, help="experiment YAML (see configs/)")
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--store", type=Path, help="feature store made by `hitrank extract`")
        src.add_argument("--labels", type=Path,
                         help="labels CSV (song_id, path, artist, hit_score); features are extracted "
                              "into a cache store first")
        src.add_argument("--data", type=Path, nargs="+",
                         help="descriptor table(s): Spotify-style CSVs or folders of them, or the "
                              "descriptors.csv of `hitrank descriptors` (configs/descriptors/)")
        p.add_argument("--out", type=Path, required=True, help="run folder")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set train.epochs=2 (repeatable)")
        p.add_argument("--folds", type=int, help="number of folds (overrides cv.folds)")
        p.add_argument("--device", help="auto | cpu | cuda (overrides train.device)")
        p.add_argument("--seed", type=int, help="random seed (overrides train.seed)")
        p.add_argument("--init", help="start from released weights: an imported pretrained model "
                       "(yu2018-kkbox) or a run folder / checkpoint (overrides train.init)")
        p.add_argument("--allow-highlighter-overlap", action="store_true",
                       help="evaluate on songs that trained the attention highlighter of an HL-30 "
                            "store (their labels chose the windows; the run records it)")
        p.add_argument("--workers", type=int, default=1, help="extraction workers for --labels")
        if name == "cv":
            p.add_argument("--distribute", default="auto", choices=["auto", "data", "folds"],
                           help="under torchrun: data (DistributedDataParallel, one model at a time) "
                                "or folds (folds as independent jobs, one per process); auto: folds "
                                "when there are at least as many folds as processes (default)")

    p = _sub(subs, "table1", "the paper's Table 1 on a labels CSV: extract the stores the rows need, "
             "cross-validate every row, compare them next to the paper's rows",
             ["hitrank table1 --labels corpus/labels.csv --out runs/table1",
              "hitrank table1 --labels corpus/labels.csv --out runs/t1 --rows a,c,i --set train.epochs=15",
              "hitrank table1 --labels corpus/labels.csv --out runs/t1 --highlighter other/highlighter.pt"],
             [common])
    p.add_argument("--labels", type=Path, required=True, help="labels CSV (song_id, path, artist, hit_score)")
    p.add_argument("--out", type=Path, required=True, help="folder: stores/, one run folder per row, "
                   "comparison.csv / .html")
    p.add_argument("--rows", default="abcdefghijkl", help="rows to run, e.g. a,c,i (default all twelve)")
    p.add_argument("--highlighter", type=Path, help="attention highlighter for the HL-30 rows, trained on "
                   "OTHER songs (default: the training-free fallback)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of every row's config, e.g. --set train.epochs=15 (repeatable)")
    p.add_argument("--workers", type=int, default=1, help="extraction worker processes (default 1)")

    p = _sub(subs, "compare", "compare CV runs: Table-1 style table next to the paper's rows, paired "
             "Wilcoxon tests over folds with the same test songs and a paired bootstrap over shared songs", ["hitrank compare runs/a runs/c runs/i",
                                           "hitrank compare runs/* --html comparison.html"], [common])
    p.add_argument("runs", nargs="+", type=Path, help="run folders written by `hitrank cv`")
    p.add_argument("--html", type=Path, help="also write an HTML page with plots here")

    p = _sub(subs, "rank", "rank a folder of songs with a trained run (fold ensemble) or checkpoint",
             ["hitrank rank new_songs/ --model runs/ab", "hitrank rank new_songs/ --model runs/ab/fold_00.pt "
              "--out ranking.csv --json", "hitrank rank new_songs/ --model runs/ab --html report.html"], [common])
    p.add_argument("folder", type=Path, help="folder of audio files (recursive)")
    p.add_argument("--model", type=Path, required=True, help="run folder or checkpoint .pt")
    p.add_argument("--out", type=Path, help="write the ranking CSV here")
    p.add_argument("--json", action="store_true", help="print the ranking as JSON on stdout")
    p.add_argument("--html", type=Path, help="write a self-contained HTML report here (players start "
                   "at the analysed segment; sortable, filterable)")
    p.add_argument("--embed-audio", action="store_true",
                   help="with --html: put the audio inside the report (at most 50 MB) instead of linking it")
    p.add_argument("--top", type=int, default=20, help="rows to print (default 20; 0 = all)")
    p.add_argument("--cache", type=Path, help="feature store to reuse (default: a folder under "
                   "$HITRANK_CACHE or ~/.cache/hitrank)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    _engine_args(p, "extraction worker processes (default 1; with --engine ray: CPUs of the local "
                    "Ray instance, default all)")
    p.add_argument("--highlighter", type=Path,
                   help="attention highlighter of an HL-30 model (default: the one in its config)")

    p = _sub(subs, "tags", "music tags of audio files (pretrained MagnaTagATune tagger, musicnn port)",
             ["hitrank tags song.wav", "hitrank tags *.mp3 --json", "hitrank tags song.wav --model MTT_vgg --top 10"],
             [common])
    p.add_argument("files", nargs="+", type=Path, help="audio files")
    p.add_argument("--model", default="MTT_musicnn", choices=tags.tag_models(),
                   help="tagger (default MTT_musicnn)")
    p.add_argument("--top", type=int, default=5, help="tags to print per file (default 5)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per file: the full 50-tag vector by name")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")

    p = _sub(subs, "predict", "score every row of a descriptor table with a trained descriptor run",
             ["hitrank predict --model runs/topify --data new_songs.csv --out predictions.csv"], [common])
    p.add_argument("--model", type=Path, required=True, help="descriptor run folder or checkpoint .pt")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="descriptor table(s)")
    p.add_argument("--out", type=Path, required=True, help="predictions CSV (one row per input row)")

    p = _sub(subs, "descriptors", "compute Spotify-style descriptors from audio (descriptors.csv)",
             ["hitrank descriptors corpus/audio --out desc/", "hitrank descriptors corpus/labels.csv --out desc/ --workers 2"],
             [common])
    p.add_argument("source", type=Path, help="folder of audio files (recursive) or labels CSV")
    p.add_argument("--out", type=Path, required=True, help="output folder (descriptors.csv, failures.csv)")
    p.add_argument("--tags", action="store_true", help="add the 50 MTT tag probabilities (tag_* columns)")
    p.add_argument("--extractor", default="hybrid", choices=list(EXTRACTORS),
                   help="hybrid: Essentia rhythm / key / EBU R128 loudness + MTT tags + librosa, "
                        "chosen by agreement with reference descriptors (default; needs "
                        "pip install 'hitrank[descriptors]'); librosa: the earlier hand-written proxies")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--allow-outside", action="store_true",
                   help="let a labels CSV point at files outside its folder")

    p = _sub(subs, "fit", "rank candidate songs by how well they fit a reference set (playlist fit)",
             ["hitrank fit --reference liked_songs/ --candidates new_songs/",
              "hitrank fit --reference liked.csv --candidates catalogue.csv --out fit.csv --json",
              "hitrank fit --reference liked_songs/ --candidates new_songs/ --tags"], [common])
    p.add_argument("--reference", type=Path, required=True, help="folder of audio or descriptor CSV")
    p.add_argument("--candidates", type=Path, required=True, help="folder of audio or descriptor CSV")
    p.add_argument("--out", type=Path, help="write the ranking CSV here")
    p.add_argument("--json", action="store_true", help="print the ranking as JSON on stdout")
    p.add_argument("--top", type=int, default=20, help="rows to print (default 20; 0 = all)")
    p.add_argument("--workers", type=int, default=1, help="worker processes for audio folders")
    p.add_argument("--tags", action="store_true",
                   help="audio folders: also compare the 50 MTT tag probabilities (musicnn port)")
    p.add_argument("--negatives", type=Path, help="songs that do NOT fit (folder of audio or "
                   "descriptor CSV): rank by a classifier (DNN, logistic regression or GBDT, "
                   "chosen on validation) instead of the Gaussian fit rule")

    p = _sub(subs, "highlight", "find the 30 s highlight of audio files (HL-30)",
             ["hitrank highlight song.wav", "hitrank highlight *.mp3 --method attention --model runs/hl/highlighter.pt --json",
              "hitrank highlight song.wav --plot plots/"], [common])
    p.add_argument("files", nargs="+", type=Path, help="audio files")
    p.add_argument("--method", choices=["attention", "fallback"],
                   help="attention (needs --model) or fallback (default: attention when --model is given)")
    p.add_argument("--model", type=Path, help="attention highlighter checkpoint")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.add_argument("--plot", type=Path, help="save a PNG of the curve over the spectrogram per file here")

    p = _sub(subs, "highlighter", "train the attention highlighter",
             ["hitrank highlighter train --config configs/highlighter/hit_score.yaml --labels corpus/labels.csv --out runs/hl"],
             [common])
    hsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _sub(hsub, "train", "train an attention highlighter on a labels CSV",
             ["hitrank highlighter train --config configs/highlighter/hit_score.yaml --labels corpus/labels.csv --out runs/hl"],
             [common])
    p.add_argument("--config", type=Path, help="highlighter YAML (configs/highlighter/)")
    p.add_argument("--labels", type=Path, required=True, help="labels CSV with hit scores")
    p.add_argument("--out", type=Path, required=True, help="run folder (writes highlighter.pt)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--workers", type=int, default=1, help="decoding worker processes")

    p = _sub(subs, "pretrained", "the authors' released models (KKBOX-trained ret30 CNN + tag DNN, JYnet)",
             ["hitrank pretrained import ../shared/reference/hsp_cnn", "hitrank pretrained import HSP_CNN/ --force"],
             [common])
    psub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _sub(psub, "import", "convert the released ret30 and JYnet weights into hitrank models under "
             "$HITRANK_CACHE/models (yu2018-kkbox, yu2018-kkbox-hl30, jynet)",
             ["hitrank pretrained import ../shared/reference/hsp_cnn",
              "hitrank pretrained import HSP_CNN/ --fusion released_script --force"], [common])
    p.add_argument("path", type=Path, help="a checkout of github.com/OckhamsRazor/HSP_CNN, or a folder "
                   "with its ret30.mdl/ and data/")
    p.add_argument("--force", action="store_true", help="replace models imported before")
    p.add_argument("--fusion", default="trained", choices=["trained", "released_script"],
                   help="trained: the trained graph's 0.3 cnn + 0.7 tag (default); released_script: "
                        "the released inference script's cnn + 0.5 tag")
    p.add_argument("--jynet-standardisation", default="clip", choices=["clip", "shipped"],
                   help="JYnet input standardisation of the KKBOX models: clip (refitted on each "
                        "clip, as the released pipeline ran; default) or shipped (the MTT standardisers)")

    p = _sub(subs, "demo", "the main job on a synthetic corpus: synth, HL-30 extraction, cross-validation "
             "of the simple CNN with pooled metrics and intervals next to random and the oracle, and "
             "a ranking of held-out songs checked against their true scores",
             ["hitrank demo", "hitrank demo --out /tmp/demo"], [common])
    p.add_argument("--out", type=Path, help="work folder (default: $HITRANK_CACHE/demo)")
    p.add_argument("--songs", type=int, default=600, help="labelled corpus size (default 600)")
    p.add_argument("--heldout", type=int, default=150, help="held-out songs to rank (default 150)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--epochs", type=int, default=8, help="epochs per model at most (default 8)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    return parser


def _setup_logging(args) -> None:
    level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def cmd_synth(args) -> int:
    from .synth import synthesize

    truth = synthesize(args.out, args.songs, seed=args.seed, fmt=args.format, sr=args.sr,
                       stereo=args.stereo, workers=args.workers, progress=_progress(args))
    print(f"wrote {len(truth)} songs to {args.out}/audio, labels in {args.out / 'labels.csv'}, "
          f"generative facts in {args.out / 'truth.csv'}")
    return EXIT_OK


def _print_failures(failures, what="songs") -> None:
    if failures:
        print(f"{len(failures)} {what} failed:", file=sys.stderr)
        for _sid, path, reason in failures:
            print(f"  {path!r}: {reason}", file=sys.stderr)


def _engine_args(p, workers_help: str) -> None:
    p.add_argument("--workers", type=int, default=None, help=workers_help)
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local (this machine, default) or ray (Ray tasks; optional extra: "
                        "pip install -e '.[ray]')")
    p.add_argument("--address", help="with --engine ray: the cluster to join (auto | HOST:PORT); "
                   "default: start a local Ray instance")


def _engine(args) -> dict:
    """extract()'s engine, address and workers from --engine, --address and --workers."""
    if args.address and args.engine != "ray":
        raise HitrankError(f"--address {args.address} needs --engine ray")
    workers = args.workers if args.workers is not None else (0 if args.engine == "ray" else 1)
    return {"engine": args.engine, "address": args.address, "workers": workers}


def cmd_extract(args) -> int:
    from . import segments
    from .extract import extract

    params = segments.params_for(args.segment, args.highlighter, window=args.window, log=args.log,
                                 tags=args.tags, tagger=args.tagger if args.tags else "")
    rep = extract(args.source, args.out, params, progress=_progress(args),
                  allow_outside=args.allow_outside, highlighter=args.highlighter, **_engine(args))
    _print_failures(rep.failures)
    if rep.silent:
        print(f"{len(rep.silent)} song(s) have a silent segment (kept, flagged silent=True: ranked "
              "last, left out of training):", file=sys.stderr)
        for _sid, path in rep.silent:
            print(f"  {path!r}", file=sys.stderr)
    print(f"{rep.ok} extracted, {rep.skipped} already done, {rep.failed} failed "
          f"-> {rep.store} (manifest.csv, mel_{params.segment}.npy)")
    return EXIT_PARTIAL if rep.failed else EXIT_OK


def _overrides(args) -> list[str]:
    """``--set`` items plus the ``--folds``, ``--device`` and ``--seed`` shortcuts."""
    overrides = list(args.overrides)
    for flag, key in ((args.folds, "cv.folds"), (args.device, "train.device"), (args.seed, "train.seed"),
                      (args.init, "train.init")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    if args.allow_highlighter_overlap:
        overrides.append("cv.allow_highlighter_overlap=true")
    return overrides


def _sources(args) -> dict:
    return {"store": args.store, "labels": args.labels, "data": args.data}


def _print_summary(summary: dict) -> None:
    procs = summary.get("processes", 1)
    print(f"{summary['name']}: {summary['n_songs']} songs, {summary['folds']} folds, "
          f"{summary['seconds']:.0f} s on {summary['device']}" + (f" x {procs} processes" if procs > 1 else ""))
    pooled, ci = summary.get("pooled"), summary.get("pooled_ci", {})
    print(f"  {'':<14} {'per fold: mean +- std (se)':>28}   pooled out-of-fold [95% CI]")
    for k in ("ndcg", "kendall", "spearman", "recall"):
        fold = f"{summary[k + '_mean']:+.4f} +- {summary[k + '_std']:.4f} ({summary.get(k + '_se', 0):.4f})"
        pool = f"{pooled[k]:+.4f} [{ci[k][0]:+.3f}, {ci[k][1]:+.3f}]" if pooled else ""
        print(f"  {k + '@10%':<14} {fold:>28}   {pool}")
    for w in summary.get("warnings", []):
        print(f"  warning: {w}")
    if summary.get("highlighter_overlap"):
        print(f"  note: {summary['highlighter_overlap']} evaluated songs supervised the highlighter "
              "(--allow-highlighter-overlap): HL-30 windows were chosen with their labels")


def _print_descriptor_summary(s: dict) -> None:
    how = f"{s['folds']} folds" if s["split"] == "kfold" else "holdout"
    extra = f", hit rate {s['prevalence']:.3f}" if s.get("prevalence") is not None else ""
    print(f"{s['name']}: {s['n_rows']} rows ({s['n_left_out']} left out){extra}, {how}, {s['seconds']:.0f} s")
    models = list(s["results"])
    metrics = list(s["results"][models[0]])
    print(f"  {'':<18}" + "".join(f"{m[:16]:>18}" for m in models))
    for k in metrics:
        cells = "".join(f"{s['results'][m][k]['mean']:>10.4f} +-{s['results'][m][k]['std']:.3f}" for m in models)
        print(f"  {k:<18}{cells}")
    for row in s.get("importance", [])[:5]:
        print(f"  importance  {row['input']:<24} {row['importance_mean']:+.4f}")


def cmd_cv(args) -> int:
    from .runs import cross_validate

    res = cross_validate(args.config, _overrides(args), out=args.out, workers=args.workers,
                         distribute=args.distribute, progress=_progress(args), **_sources(args))
    if res["kind"] == "descriptor":
        s = res["summary"]
        _print_descriptor_summary(s)
        print(f"run folder: {args.out} (summary.json, folds.csv, predictions.csv, importance.csv/png, fold_XX.pt)")
        return EXIT_PARTIAL if s["n_left_out"] else EXIT_OK
    _print_failures(res["failures"])
    if res["main"]:
        _print_summary(res["summary"])
        print(f"run folder: {args.out} (summary.json, folds.csv, predictions.csv, fold_XX.pt, report.html)")
    return EXIT_PARTIAL if res["problems"] else EXIT_OK


def cmd_train(args) -> int:
    from .runs import train

    res = train(args.config, _overrides(args), out=args.out, workers=args.workers,
                progress=_progress(args), **_sources(args))
    if res["kind"] == "descriptor":
        info = res["info"]
        print(f"trained {info['name']} on {info['n_train']} rows (validation {info['n_val']}, "
              f"{info['n_left_out']} left out) -> {args.out / 'model.pt'}")
        return EXIT_PARTIAL if info["n_left_out"] else EXIT_OK
    _print_failures(res["failures"])
    info = res["info"]
    if res["main"]:
        print(f"trained {res['cfg'].name} on {info['n_train']} songs (validation {info['n_val']}): "
              f"val nDCG {info['val_ndcg']:.4f}, Spearman {info['val_spearman']:.4f} -> {args.out / 'model.pt'}")
    return EXIT_PARTIAL if res["problems"] else EXIT_OK


def cmd_rank(args) -> int:
    from .runs import rank

    ranking, failures = rank(args.folder, args.model, cache=args.cache, device=args.device,
                             progress=_progress(args), highlighter=args.highlighter, **_engine(args))
    return _report_ranking(args, ranking, failures)


def _write_csv(frame, path: Path) -> None:
    from .fileio import atomic_write_text

    atomic_write_text(path, frame.to_csv(index=False))


def _report_ranking(args, ranking, failures) -> int:
    if args.out:
        _write_csv(ranking, args.out)
    if args.html:
        from .report import write_ranking_report

        write_ranking_report(ranking, failures, args.html, str(args.model),
                             store_dir=ranking.attrs.get("store"), embed_audio=args.embed_audio)
    if args.json:
        rows = ranking.astype(object).where(ranking.notna(), None).to_dict("records")  # NaN -> null
        print(_json_dump({"ranking": rows, "failures": [
            {"song_id": s, "path": p, "error": r} for s, p, r in failures]}))
    else:
        shown = ranking if args.top == 0 else ranking.head(args.top)
        for r in shown.itertuples():
            spread = f" +- {r.score_std:.3f}" if getattr(r, "n_models", 1) > 1 else ""
            flags = f"  [{r.flags}]" if getattr(r, "flags", "") else ""
            print(f"{r.rank:>5}  {r.score:+.3f}{spread}  {r.song_id}{flags}")
        _print_failures(failures, "files")
        where = (f", CSV in {args.out}" if args.out else "") + (f", report in {args.html}" if args.html else "")
        print(f"ranked {len(ranking)} songs with {args.model}{where}")
    return EXIT_PARTIAL if failures else EXIT_OK


def cmd_table1(args) -> int:
    from .table1 import run_table1

    res = run_table1(args.labels, args.out, args.rows, args.overrides, highlighter=args.highlighter,
                     workers=args.workers, progress=_progress(args))
    _print_failures(res["failures"])
    print(res["table"].to_string(index=False))
    if res["pairs"] is not None:
        print()
        print(res["pairs"].to_string(index=False))
    print(f"\n{len(res['rows'])} rows in {res['seconds']:.0f} s; run folders in {args.out}, "
          f"comparison in {res['html']}")
    return EXIT_PARTIAL if res["failures"] else EXIT_OK


def cmd_compare(args) -> int:
    from .cvreport import comparison_table, load_run, pairwise, write_cv_report

    runs = [load_run(r) for r in args.runs]
    print(comparison_table(runs).to_string(index=False))
    if len(runs) > 1:
        print()
        print(pairwise(runs).to_string(index=False))
    if args.html:
        write_cv_report(runs, args.html)
        print(f"report in {args.html}")
    return EXIT_OK


def cmd_tags(args) -> int:
    from .tags import tag_files

    failures = []
    for path, t in tag_files(args.files, args.model, args.device):
        if isinstance(t, HitrankError):
            print(f"error: {t}", file=sys.stderr)
            failures.append(path)
        elif args.json:
            print(_json_dump({"path": t["path"], "duration": round(t["duration"], 3), "model": t["model"],
                              "top": t["top"][: args.top],
                              "tags": {k: round(v, 6) for k, v in t["tags"].items()}}))
        else:
            top = ", ".join(f"{name} {t['tags'][name]:.2f}" for name in t["top"][: args.top])
            print(f"{path}: {top}")
    if failures:
        print(f"{len(failures)} of {len(args.files)} files failed", file=sys.stderr)
    return EXIT_PARTIAL if failures else EXIT_OK


def cmd_predict(args) -> int:
    from .runs import predict

    pred, n_models = predict(args.model, args.data)
    _write_csv(pred, args.out)
    print(f"scored {len(pred)} rows with {n_models} model(s) of {args.model} -> {args.out}")
    return EXIT_OK


def cmd_descriptors(args) -> int:
    from .descriptors.audio import describe_folder

    rep = describe_folder(args.source, args.out, workers=args.workers, progress=_progress(args),
                          allow_outside=args.allow_outside, tags=args.tags, extractor=args.extractor)
    _print_failures(rep.failures)
    print(f"{rep.ok} described, {rep.skipped} already done, {rep.failed} failed "
          f"-> {args.out / 'descriptors.csv'} (failures.csv)")
    return EXIT_PARTIAL if rep.failed else EXIT_OK


def cmd_fit(args) -> int:
    from .descriptors.fit import fit_sources

    ranking, n_ref, failures = fit_sources(args.reference, args.candidates, workers=args.workers,
                                           progress=_progress(args), tags=args.tags,
                                           negatives=args.negatives)
    if args.out:
        _write_csv(ranking, args.out)
    if args.json:
        print(_json_dump({"columns": ranking.attrs["columns"], "ranking": ranking.to_dict("records"),
                          "failures": [{"song_id": s, "path": p, "error": r} for s, p, r in failures]}))
    else:
        shown = ranking if args.top == 0 else ranking.head(args.top)
        for r in shown.itertuples():
            print(f"{r.rank:>5}  {r.fit:+.3f}  {r.id}")
        _print_failures(failures, "files")
        print(f"ranked {len(ranking)} candidates against {n_ref} reference songs on "
              f"{len(ranking.attrs['columns'])} descriptors" + (f", CSV in {args.out}" if args.out else ""))
    return EXIT_PARTIAL if failures else EXIT_OK


def cmd_highlight(args) -> int:
    from .thumbnail import highlight_files

    failures = []
    for path, h in highlight_files(args.files, args.method, args.model, plot=args.plot):
        if isinstance(h, HitrankError):
            print(f"error: {h}", file=sys.stderr)
            failures.append(path)
        elif args.json:
            print(_json_dump({k: (round(v, 3) if isinstance(v, float) else v) for k, v in h.items()
                              if k in ("path", "start", "end", "method", "duration", "plot")}))
        else:
            print(f"{h['start']:7.1f} {h['end']:7.1f}  {h['method']:<9}  {path}")
    return EXIT_PARTIAL if failures else EXIT_OK


def cmd_highlighter(args) -> int:
    from .thumbnail.training import load_highlighter_config, train_highlighter

    cfg = load_highlighter_config(args.config, args.overrides)
    s = train_highlighter(args.labels, args.out, cfg, workers=args.workers, progress=_progress(args))
    print(f"trained highlighter on {s['n_train']} songs (validation {s['n_val']}, best epoch "
          f"{s['best_epoch']}, val MSE {s['val_loss']:.4f}) -> {args.out / 'highlighter.pt'}")
    return EXIT_OK


def cmd_pretrained(args) -> int:
    from .pretrained import import_release

    for folder in import_release(args.path, force=args.force, fusion=args.fusion,
                                 standardisation=args.jynet_standardisation):
        print(f"imported {folder}")
    print("rank a folder with: hitrank rank FOLDER --model yu2018-kkbox [--html report.html]")
    return EXIT_OK


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, n_songs=args.songs, epochs=args.epochs, workers=args.workers,
             progress=_progress(args), heldout=args.heldout, folds=args.folds)
    return EXIT_OK


COMMANDS = {"synth": cmd_synth, "extract": cmd_extract, "train": cmd_train, "cv": cmd_cv,
            "rank": cmd_rank, "demo": cmd_demo, "highlight": cmd_highlight,
            "highlighter": cmd_highlighter, "predict": cmd_predict, "tags": cmd_tags,
            "compare": cmd_compare, "pretrained": cmd_pretrained, "table1": cmd_table1,
            "descriptors": cmd_descriptors, "fit": cmd_fit}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        parser = get_parser()
    except HitrankError as exc:  # e.g. a plug-in of $HITRANK_PLUGINS that does not import
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    _setup_logging(args)
    try:
        return COMMANDS[args.command](args)
    except HitrankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; work done so far is saved; run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # e.g. a full disk while writing a store: stop cleanly, nothing is lost
        print(f"error: {exc}; work done so far is saved, run the same command again to resume",
              file=sys.stderr)
        return EXIT_USAGE


def _json_dump(obj) -> str:
    return json.dumps(obj, indent=None, allow_nan=False)


if __name__ == "__main__":
    sys.exit(main())
