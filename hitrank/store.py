"""Feature store: a float16 ``.npy`` array plus a CSV manifest, resumable and crash-safe.

(Raw-power features, ``log='none'``, are stored as float32: their loud bins overflow float16.)

On-disk layout (readable with plain numpy and pandas)::

    STORE/params.json        feature parameters, format version and the manifest's extra columns
    STORE/mel_<segment>.npy  float16, shape (capacity, n_mels, n_frames); row r = song at row r
    STORE/tags.npy           float32, shape (capacity, 50): MTT tag probabilities (only with tags)
    STORE/emb_<net>_<scope>.npy  float32, shape (capacity, dim): a pretrained network's song
                             embedding (only with ``--embedding``; hitrank.embeddings)
    STORE/contrast_<segment>.npy  like mel_<segment>.npy: each song's contrast window (only
                             with ``contrast``: 30 s away from the segment, of median or
                             lowest highlighter rating, for within-song training)
    STORE/whole_<segment>/<row>.npy  like mel_<segment>.npy's dtype, shape (n_mels,
                             n_song_frames): each song's whole log-mel, one file per song
                             (only with ``whole_song``: whole-song training,
                             ``train.window_loss``; float16: about 0.5 MB per 3-minute song)
    STORE/manifest.csv       one row per song: song_id, path, row, seg_start, seg_end,
                             duration, padded, status (ok|failed|pending), error, artist, hit_score,
                             silent (the segment holds no sound: kept, flagged), stamp
                             (the file's size:mtime_ns when planned: a file changed since is
                             extracted again), then the segment method's own fields (HL-30:
                             method, curve), as recorded in params.json (``manifest_fields``)
    STORE/journal.jsonl      append-only log the manifest is rebuilt from (internal)

``np.load(STORE / 'mel_mid30.npy', mmap_mode='r')[manifest.row[manifest.status == 'ok']]``
gives the features of the finished songs.

Crash safety: a song's features are written into its row (``pwrite``) *before* its journal
line is appended, so a kill at any moment leaves at most one row whose features are not
recorded, and that song is simply redone on the next run. Rows are assigned once per song
(journalled as ``pending`` before any work), so an interrupted and resumed run produces the
same file as an uninterrupted one. ``manifest.csv`` is rewritten atomically (temporary file
+ rename) during and at the end of each run.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .constants import N_TAGS
from .errors import StoreError
from .features import FeatureParams
from .fileio import atomic_path, atomic_write_text, output_folder
from .journal import Journal

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
BASE_COLUMNS = ["song_id", "path", "row", "seg_start", "seg_end", "duration", "padded",
                "status", "error", "artist", "hit_score", "silent", "stamp"]
TEXT_COLUMNS = ("error", "artist", "stamp")  # '' when missing; segment methods' fields are text too
FSYNC_EVERY = 64  # songs between fsyncs of the data and the journal
MANIFEST_EVERY = 256  # songs between rewrites of manifest.csv during a run
GROW_CHUNK = 256  # rows copied at a time when the feature file grows


def file_stamp(path: str | os.PathLike) -> str:
    """``size:mtime_ns`` of a file as the store last saw it ('' when it cannot be read): a file
    replaced at the same path by another recording changes it (unless the replacement has
    the same size and its modification time was copied too)."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def _same(rec: dict, path: str, artist: str, score: float) -> bool:
    """Whether a record already holds these label fields (NaN scores compare equal)."""
    old = rec["hit_score"]
    same_score = (pd.isna(old) and pd.isna(score)) or old == score
    return rec["path"] == path and rec["artist"] == artist and same_score


class FeatureStore:
    """A feature store on disk.

    Use :meth:`open` to read an existing store and :meth:`create_or_open` to extract into one.
    """

    def __init__(self, root: Path, params: FeatureParams, fields: Sequence[str] = ()):
        self.root = Path(root)
        self.params = params
        self.fields = tuple(fields)  # the segment method's manifest columns, after BASE_COLUMNS
        self._fields_recorded = True  # False: an older store's params.json, fields inferred
        self._records: dict[str, dict] = {}
        self._fd: int | None = None
        self._side_fd: dict[str, int] = {}  # side array name -> open file (tags, embedding, contrast)
        self._side_offset: dict[str, int] = {}
        self._journal = Journal(self.root / "journal.jsonl")
        self._writing = False  # set by plan(): close() then syncs and writes the manifest
        self._lock = None
        self._since_sync = 0
        self._since_manifest = 0

    # ------------------------------------------------------------------ opening
    @property
    def data_path(self) -> Path:
        return self.root / f"mel_{self.params.segment}.npy"

    @property
    def tags_path(self) -> Path:
        return self.root / "tags.npy"

    @property
    def has_tags(self) -> bool:
        return bool(self.params.tags)

    @property
    def embedding_path(self) -> Path:
        p = self.params
        return self.root / f"emb_{p.embedding}_{p.embedding_scope}.npy"

    @property
    def has_embedding(self) -> bool:
        return bool(self.params.embedding)

    @property
    def contrast_path(self) -> Path:
        return self.root / f"contrast_{self.params.segment}.npy"

    @property
    def has_contrast(self) -> bool:
        return bool(self.params.contrast)

    @property
    def side_names(self) -> tuple[str, ...]:
        """The names :meth:`write` takes beside the features: those of :attr:`sides`, and
        ``whole`` when the store holds whole-song log-mels."""
        return (*self.sides, *(("whole",) if self.has_whole else ()))

    @property
    def has_whole(self) -> bool:
        """Whether the store holds each song's whole log-mel (``whole_song``)."""
        return bool(self.params.whole_song)

    @property
    def sides(self) -> dict[str, tuple[Path, tuple[int, ...], np.dtype]]:
        """The per-song arrays stored beside the features: name -> (file, shape of one
        song's array, dtype): tags (50,), embedding (dim,), contrast (n_mels, n_frames)."""
        out = {}
        if self.has_tags:
            out["tags"] = (self.tags_path, (N_TAGS,), np.dtype(np.float32))
        if self.has_embedding:
            out["embedding"] = (self.embedding_path, (self.params.embedding_dim,), np.dtype(np.float32))
        if self.has_contrast:
            out["contrast"] = (self.contrast_path, self.row_shape, self.dtype)
        return out

    @property
    def files(self) -> list[str]:
        """The names of the files a user reads: the manifest, the features and the arrays
        beside them (:attr:`sides`), e.g. ``['manifest.csv', 'mel_hl30.npy', 'tags.npy']``."""
        return ["manifest.csv", self.data_path.name, *(path.name for path, _, _ in self.sides.values()),
                *((self._whole_folder().name + "/",) if self.has_whole else ())]

    @property
    def row_shape(self) -> tuple[int, int]:
        return (self.params.n_mels, self.params.n_frames)

    @property
    def dtype(self) -> np.dtype:
        """dtype of the stored features (float16; float32 for raw power, see FeatureParams.dtype)."""
        return np.dtype(self.params.dtype)

    @property
    def manifest_columns(self) -> list[str]:
        """The manifest's columns: the base ones, then the segment method's own fields."""
        return BASE_COLUMNS + list(self.fields)

    @classmethod
    def open(cls, root: str | os.PathLike) -> FeatureStore:
        """Open an existing store read-only."""
        root = Path(root)
        pfile = root / "params.json"
        if not pfile.exists():
            raise StoreError(f"{str(root)!r}: not a feature store (no params.json); "
                             "create one with `hitrank extract SOURCE --out STORE`")
        try:
            meta = json.loads(pfile.read_text())
            params = FeatureParams.from_dict(meta["features"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise StoreError(f"{str(pfile)!r}: corrupt params.json ({exc})") from None
        store = cls(root, params)
        store._load_records()
        recorded = meta.get("manifest_fields")
        store._fields_recorded = recorded is not None
        store.fields = tuple(recorded) if recorded is not None else store._fields_of_older_store()
        return store

    def _fields_of_older_store(self) -> tuple[str, ...]:
        """The extra manifest columns of a store written before params.json recorded them:
        those of its manifest.csv, else those of its journal's records."""
        mfile = self.root / "manifest.csv"
        if mfile.exists():
            columns = list(pd.read_csv(mfile, nrows=0).columns)
        else:
            columns = list(dict.fromkeys(k for r in self._records.values() for k in r))
        return tuple(c for c in columns if c not in BASE_COLUMNS)

    @classmethod
    def create_or_open(cls, root: str | os.PathLike, params: FeatureParams,
                       fields: Sequence[str] | None = None) -> FeatureStore:
        """Open a store for writing, creating it if needed; refuses different parameters.

        Parameters
        ----------
        root : the store's folder
        params : the feature parameters of every song in it
        fields : the extra manifest columns (text) the segment method fills, e.g. HL-30's
            ``("method", "curve")`` (``segments.get(params.segment).manifest_fields``);
            recorded in params.json. None: those the store records (a new store: none).
        """
        root = output_folder(root, "a feature store", StoreError)
        pfile = root / "params.json"
        if pfile.exists():
            store = cls.open(root)
            if store.params != params:
                diff = {k: (v, params.to_dict()[k]) for k, v in store.params.to_dict().items()
                        if params.to_dict()[k] != v}
                raise StoreError(
                    f"{str(root)!r} holds features made with other parameters "
                    f"(stored vs requested: {diff}); use another store folder (extract --out, rank --cache)"
                )
            if fields is not None and not store._fields_recorded:
                store.fields = tuple(fields)  # an older store: the segment method knows them
            elif fields is not None and tuple(fields) != store.fields:
                raise StoreError(f"{str(root)!r} has the manifest columns {list(store.fields)} of its "
                                 f"segment method, not {list(fields)}; use another store folder (extract --out, rank --cache)")
        else:
            fields = tuple(fields or ())
            atomic_write_text(pfile, json.dumps(
                {"format_version": FORMAT_VERSION, "features": params.to_dict(),
                 "n_frames": params.n_frames, "dtype": params.dtype,
                 "manifest_fields": list(fields)}, indent=2))
            store = cls(root, params, fields)
        store._acquire_lock()
        return store

    def _acquire_lock(self) -> None:
        self._lock = open(self.root / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise StoreError(f"{str(self.root)!r} is being written by another hitrank process; "
                             "wait for it to finish") from None

    def _load_records(self) -> None:
        self._records = self._journal.read()
        if not self._records and (self.root / "manifest.csv").exists():
            df = pd.read_csv(self.root / "manifest.csv", dtype={"song_id": str, "error": str,
                                                                 "artist": str, "stamp": str})
            self._records = {r["song_id"]: r for r in df.to_dict("records")}

    # ------------------------------------------------------------------ reading
    @property
    def manifest(self) -> pd.DataFrame:
        """One row per song (the latest record), in row order."""
        columns = self.manifest_columns
        df = pd.DataFrame(list(self._records.values()), columns=columns)
        for col in (*TEXT_COLUMNS, *columns[len(BASE_COLUMNS):]):  # text columns: '' for missing
            df[col] = df[col].map(lambda v: "" if pd.isna(v) else v).astype(object)
        df["silent"] = df["silent"].map(lambda v: bool(v) if isinstance(v, (bool, np.bool_)) else
                                        str(v).lower() == "true").astype(bool)  # stores older than the flag: False
        return df.sort_values("row", kind="stable").reset_index(drop=True)

    def done_ids(self) -> set[str]:
        return {k for k, r in self._records.items() if r["status"] == "ok"}

    def features(self) -> np.ndarray:
        """Memory-mapped array (capacity, n_mels, n_frames) float16, read-only."""
        if not self.data_path.exists():
            return np.zeros((0, *self.row_shape), self.dtype)
        return np.load(self.data_path, mmap_mode="r")

    def load(self, song_ids: list[str]) -> np.ndarray:
        """Features of finished songs, (len(song_ids), n_mels, n_frames) :attr:`dtype`, in memory."""
        missing = [s for s in song_ids if self._records.get(s, {}).get("status") != "ok"]
        if missing:
            raise StoreError(f"{str(self.root)!r}: no features for {len(missing)} song(s), "
                             f"e.g. {missing[:3]}; run `hitrank extract` first")
        rows = np.array([int(self._records[s]["row"]) for s in song_ids], dtype=np.int64)
        out = np.empty((len(rows), *self.row_shape), self.dtype)
        if not len(rows):
            return out
        offset = np.load(self.data_path, mmap_mode="r").offset
        nbytes = out[0].nbytes
        # read each row straight into the output, in row order (sequential on disk): no
        # temporary copy and no mapped pages, so peak memory is the result itself
        with open(self.data_path, "rb", buffering=0) as f:
            for i in np.argsort(rows, kind="stable"):
                f.seek(offset + int(rows[i]) * nbytes)
                if f.readinto(memoryview(out[i]).cast("B")) != nbytes:
                    raise StoreError(f"{str(self.data_path)!r} is shorter than its manifest says; "
                                     "re-extract the store")
        return out

    def load_tags(self, song_ids: list[str]) -> np.ndarray:
        """Tag vectors of finished songs, (len(song_ids), 50) float32."""
        if not self.has_tags:
            raise StoreError(f"{str(self.root)!r} holds no tags; extract with `hitrank extract --tags`")
        return self._load_side("tags", song_ids)

    def load_embeddings(self, song_ids: list[str]) -> np.ndarray:
        """Embeddings of finished songs, (len(song_ids), embedding_dim) float32."""
        if not self.has_embedding:
            raise StoreError(f"{str(self.root)!r} holds no embeddings; extract with "
                             "`hitrank extract --embedding musicnn`")
        return self._load_side("embedding", song_ids)

    def load_contrast(self, song_ids: list[str]) -> np.ndarray:
        """Contrast windows of finished songs, (len(song_ids), n_mels, n_frames) :attr:`dtype`."""
        if not self.has_contrast:
            raise StoreError(f"{str(self.root)!r} holds no contrast windows; extract with "
                             "features.contrast: median or lowest (segment hl30)")
        return self._load_side("contrast", song_ids)

    def load_whole(self, song_ids: list[str]) -> list[np.ndarray]:
        """Whole-song log-mels of finished songs: one (n_mels, n_song_frames) :attr:`dtype`
        array per song (``whole_song`` stores), memory-mapped copy-on-write: processes that
        load the same store share its pages."""
        if not self.has_whole:
            raise StoreError(f"{str(self.root)!r} holds no whole-song log-mels; extract with "
                             "features.whole_song: true")
        missing = [s for s in song_ids if self._records.get(s, {}).get("status") != "ok"]
        if missing:
            raise StoreError(f"{str(self.root)!r}: no whole-song log-mel for {len(missing)} song(s), "
                             f"e.g. {missing[:3]}")
        out = []
        for sid in song_ids:
            path = self._whole_path(int(self._records[sid]["row"]))
            try:
                arr = np.load(path, mmap_mode="c", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise StoreError(f"{str(path)!r} (song {sid!r}) cannot be read ({exc}); "
                                 "re-extract the store") from None
            if arr.ndim != 2 or arr.shape[0] != self.params.n_mels:
                raise StoreError(f"{str(path)!r} (song {sid!r}): expected ({self.params.n_mels}, "
                                 f"frames), found {arr.shape}; re-extract the store")
            out.append(arr)
        return out

    def _whole_path(self, row: int) -> Path:
        """The file of the whole-song log-mel of the song at ``row``."""
        return self._whole_folder() / f"{row:07d}.npy"

    def _whole_folder(self) -> Path:
        return self.root / f"whole_{self.params.segment}"

    def _load_side(self, name: str, song_ids: list[str]) -> np.ndarray:
        path, shape, dtype = self.sides[name]
        missing = [s for s in song_ids if self._records.get(s, {}).get("status") != "ok"]
        if missing:
            raise StoreError(f"{str(self.root)!r}: no {name} for {len(missing)} song(s), e.g. {missing[:3]}")
        rows = np.array([int(self._records[s]["row"]) for s in song_ids], dtype=np.int64)
        mm = np.load(path, mmap_mode="r")
        if mm.shape[1:] != shape:
            raise StoreError(f"{str(path)!r}: expected arrays of shape {shape} per song, found {mm.shape[1:]}")
        return np.asarray(mm[rows], dtype=dtype)

    # ------------------------------------------------------------------ writing
    def plan(self, songs: list[tuple[str, str, str, float]]) -> None:
        """Assign rows to new songs (journalled as pending) and size the feature file.

        ``songs`` are (song_id, path, artist, hit_score); known songs keep their row, and
        their path, artist and score are refreshed. A known song whose file changed on disk
        since it was extracted (another size or modification time, :func:`file_stamp`, also
        after a move to another path) is extracted again; a file that cannot be read now at
        the path it was extracted from (a drive not mounted) and songs of stores older than the
        stamp keep their features; one that cannot be read at a new path is extracted again
        (and fails, named), since its features were of another file.
        """
        self._writing = True
        next_row = 1 + max((int(r["row"]) for r in self._records.values()), default=-1)
        changed = []
        for sid, path, artist, score in songs:
            rec, stamp = self._records.get(sid), file_stamp(path)
            if rec is None:
                rec = {"song_id": sid, "path": path, "row": next_row, "seg_start": None,
                       "seg_end": None, "duration": None, "padded": False, "status": "pending",
                       "error": "", "artist": artist, "hit_score": score, "stamp": stamp}
                next_row += 1
                self._append(rec)
                continue
            old = rec.get("stamp")
            elsewhere = os.path.realpath(str(rec["path"])) != os.path.realpath(str(path))
            if not stamp and not elsewhere:  # unreadable now (a drive not mounted): keep what was extracted
                stamp = old if isinstance(old, str) else ""
            # another file (older stores: no stamp), or a path that now names no readable file
            moved = (isinstance(old, str) and bool(old) and old != stamp) or (not stamp and elsewhere)
            if moved and rec["status"] == "ok":
                changed.append(path)
                rec = {**rec, "status": "pending"}
            if moved or not _same(rec, path, artist, score) or (old if isinstance(old, str) else "") != stamp:
                self._append({**rec, "path": path, "artist": artist, "hit_score": score, "stamp": stamp})
        if changed:
            log.info("%d song(s) changed on disk since they were extracted (e.g. %r): extracting them again",
                     len(changed), changed[0])
        if self.has_whole:  # a run killed while writing a song's file leaves its temporary file
            self._whole_folder().mkdir(exist_ok=True)
            for tmp in self._whole_folder().glob("*.tmp"):
                tmp.unlink()
        self._sync()
        self._ensure_capacity(next_row)

    def _ensure_capacity(self, n_rows: int) -> None:
        _grow(self.data_path, (n_rows, *self.row_shape), self.dtype)
        for path, shape, dtype in self.sides.values():
            _grow(path, (n_rows, *shape), dtype)
        self._open_data()

    def _close_files(self) -> None:
        for fd in (self._fd, *self._side_fd.values()):
            if fd is not None:
                os.close(fd)
        self._fd, self._side_fd = None, {}

    def _open_data(self) -> None:
        self._close_files()
        self._offset = np.load(self.data_path, mmap_mode="r").offset  # header length, bytes
        self._fd = os.open(self.data_path, os.O_RDWR)
        for name, (path, _, _) in self.sides.items():
            self._side_offset[name] = np.load(path, mmap_mode="r").offset
            self._side_fd[name] = os.open(path, os.O_RDWR)

    def _append(self, rec: dict) -> None:
        self._records[rec["song_id"]] = rec
        self._journal.append(rec)

    def _sync(self) -> None:
        if self._writing and self.has_whole:  # the renames of whole-song files before their records
            fd = os.open(self._whole_folder(), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._journal.sync()
        for fd in (self._fd, *self._side_fd.values()):
            if fd is not None:
                os.fsync(fd)
        self._since_sync = 0

    def write(self, song_id: str, feats: np.ndarray, info: dict, **sides: np.ndarray | None) -> None:
        """Store one song's features and its side arrays (``tags=``, ``embedding=``,
        ``contrast=``: each store's :attr:`sides`; ``whole=`` with ``whole_song``), then record
        it as done."""
        rec = self._records[song_id]
        unknown = set(sides) - set(self.side_names)
        if unknown:
            raise StoreError(f"{str(self.root)!r} stores no {sorted(unknown)} (it holds {list(self.side_names)})")
        if self.has_whole:
            self._write_whole(song_id, int(rec["row"]), sides.get("whole"))
        for name, (path, shape, dtype) in self.sides.items():
            v = sides.get(name)
            t = np.ascontiguousarray(v, dtype=dtype) if v is not None else None
            if t is None or t.shape != shape:
                raise StoreError(f"{name} of {song_id!r}: expected shape {shape}, got "
                                 f"{None if t is None else t.shape}")
            _pwrite(self._side_fd[name], t.tobytes(), self._side_offset[name] + int(rec["row"]) * t.nbytes, path)
        data = np.ascontiguousarray(feats, dtype=self.dtype)
        if data.shape != self.row_shape:
            raise StoreError(f"features of {song_id!r} have shape {data.shape}, "
                             f"store expects {self.row_shape}")
        _pwrite(self._fd, data.tobytes(), self._offset + int(rec["row"]) * data.nbytes, self.data_path)
        self._append({**rec, **info, "status": "ok", "error": ""})
        self._tick()

    def _write_whole(self, song_id: str, row: int, whole: np.ndarray | None) -> None:
        """Write one song's whole log-mel to its own file, complete (temporary file, fsync,
        rename) before the song's journal line."""
        arr = None if whole is None else np.ascontiguousarray(whole, dtype=self.dtype)
        if arr is None or arr.ndim != 2 or arr.shape[0] != self.params.n_mels:
            raise StoreError(f"whole of {song_id!r}: expected shape ({self.params.n_mels}, frames), "
                             f"got {None if arr is None else arr.shape}")
        with atomic_path(self._whole_path(row)) as tmp, open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())

    def fail(self, song_id: str, reason: str) -> None:
        """Record a failure (the batch goes on)."""
        self._append({**self._records[song_id], "status": "failed", "error": reason})
        self._tick()

    def _tick(self) -> None:
        self._since_sync += 1
        self._since_manifest += 1
        if self._since_sync >= FSYNC_EVERY:
            self._sync()
        if self._since_manifest >= MANIFEST_EVERY:
            self.write_manifest()

    def write_manifest(self) -> None:
        """Rewrite manifest.csv atomically from the records."""
        atomic_write_text(self.root / "manifest.csv", self.manifest.to_csv(index=False))
        self._since_manifest = 0

    def close(self) -> None:
        """Flush everything, write the manifest, release the lock."""
        if self._writing:
            self._sync()
            self._journal.close()
            self.write_manifest()
            self._writing = False
        self._close_files()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _pwrite(fd: int, data: bytes, offset: int, path: Path) -> None:
    written = os.pwrite(fd, data, offset)
    if written != len(data):
        raise OSError(f"short write ({written} of {len(data)} bytes) to {path}")


def _grow(path: Path, shape: tuple, dtype) -> None:
    """Make the .npy at ``path`` hold at least ``shape[0]`` rows (atomic copy when growing)."""
    old = None
    if path.exists():
        old = np.load(path, mmap_mode="r")
        if old.shape[0] >= shape[0]:
            return
    tmp = path.with_name(path.name + ".grow")
    new = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    if old is not None:
        for i in range(0, old.shape[0], GROW_CHUNK):
            j = min(i + GROW_CHUNK, old.shape[0])
            new[i:j] = old[i:j]
    new.flush()
    del new, old
    os.replace(tmp, path)
