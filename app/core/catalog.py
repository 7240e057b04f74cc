"""The catalog: the library's single record of its files, in one SQLite file.

Milvus holds each decodable photo's vector under its id and answers vector queries; everything
else a scan knows is here:

- ``files``: every file read (path, size, mtime_ns, content hash, size in pixels, model, problem):
  what a rescan compares the folders with, so an unchanged rescan reads only this file;
- ``signatures``: each photo's small grayscale signature (and, while the verification settings
  are the same, its packed local features), what verification reads;
- verified pairs, the photos whose neighbours were searched per set of folders, the groupings
  made from them, the content squares and the photo facts the keeper is chosen on.

The verification outcomes and what derives from them are stored with both photos' stamps (size,
mtime_ns): an outcome of a file that changed since no longer matches and is recomputed; opened
with other verification settings they start empty. ``files`` and the signatures are kept across
such changes: they are facts of the file as it was read.

The catalog and Milvus are reconciled by id (library.py): the catalog says which photos there
are, Milvus which of them have a vector.

One file per library. Each model's collection has its own tables (ids and vectors belong to a
collection); the library's "not duplicates" marks (decisions.py) are tables of the same file,
outside any collection, so they outlive a change of model, of verification settings, or a
collection that is rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import urllib.parse
from typing import Iterable, Optional

import numpy as np

from app import __version__, paths
from app.core import candidates, verify

log = logging.getLogger(__name__)

# Bump when verification or candidate search changes what an outcome means.
FORMAT = 4
GROUPINGS_KEPT = 8


def stamp(size: int, mtime_ns: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{size}:{mtime_ns}".encode(), digest_size=7).digest(), "big")


def scope_key(folders: Iterable[str]) -> str:
    return hashlib.sha1("\n".join(sorted(folders)).encode("utf-8", "surrogateescape")).hexdigest()


def location_for(library_location: str) -> str:
    """Beside a Milvus Lite library; in the data folder for a server library (by URI and database)."""
    if "://" in library_location:
        return str(paths.data_dir() / "catalog" / f"{_digest(library_location)}.sqlite")
    return f"{os.path.abspath(library_location)}.catalog.sqlite"


def legacy_location(library_location: str, collection: str) -> str:
    """Where earlier versions of Doppel kept a collection's catalog, in a file of its own."""
    if "://" in library_location:
        return str(paths.data_dir() / "catalog" / f"{_digest(library_location)}-{collection}.sqlite")
    return f"{os.path.abspath(library_location)}.{collection}.catalog.sqlite"


def _digest(library_location: str) -> str:
    return hashlib.sha1(library_location.encode()).hexdigest()[:16]


TABLES = ("meta", "files", "pairs", "searched", "groupings", "signatures", "squares", "facts")


class Tables:
    """The quoted names of one collection's tables."""

    def __init__(self, collection: str):
        if not collection.replace("_", "").isalnum():
            raise ValueError(f"collection name {collection!r}")
        for name in TABLES:
            setattr(self, name, f'"{collection}__{name}"')


def take_over(db: sqlite3.Connection, legacy: str, copy) -> bool:
    """Copy a file of an earlier version's layout into ``db`` once: ``copy(old)`` with a read-only
    connection to it, in one write transaction of ``db`` that also renames the file to
    ``*.imported`` (kept, not deleted). A second process that waited for that transaction finds
    the file gone and copies nothing. False when there was nothing to take over."""
    try:
        old = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(legacy))}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            if not os.path.exists(legacy):
                db.rollback()
                return False
            copy(old)
            os.replace(legacy, legacy + ".imported")
        except BaseException:
            db.rollback()
            raise
        db.commit()
        return True
    finally:
        old.close()


FILE_COLUMNS = "id, path, size, mtime_ns, sha256, width, height, format, model, problem"


def verification_settings() -> dict:
    """What the catalog's verification outcomes depend on: opened with other values, they start empty."""
    return {"top_k": candidates.TOP_K, "candidate_cosine": candidates.CANDIDATE_COSINE,
            "verify": verify.VERSION, "doppel": __version__}


class CatalogError(RuntimeError):
    pass


class Catalog:
    """One library's catalog. The tables of one model's collection are named after it
    (``<collection>__files``, ...): photo ids and vectors belong to a collection, and a library
    keeps a collection per model it was scanned with. The "not duplicates" marks of the library
    share the file (decisions.py)."""

    def __init__(self, path: str, settings: dict, collection: str = "photos", legacy: Optional[str] = None):
        """``legacy``: where an older Doppel kept this collection's catalog in a file of its own;
        its rows are taken over once, and the file is renamed ``*.imported``."""
        self.path = path
        self.collection = collection
        self.t = Tables(collection)
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30)
            self._create()
            if legacy and os.path.exists(legacy) and not self.file_count():
                self._take_over(legacy)
            self._check_settings(settings)
        except (sqlite3.Error, OSError) as exc:
            raise CatalogError(f"cannot open the library's catalog {path}: {exc}") from exc

    def _take_over(self, legacy: str) -> None:
        def copy(old: sqlite3.Connection) -> None:
            held = {n for (n,) in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for name in TABLES:
                if name in held:
                    cur = old.execute(f"SELECT * FROM {name}")
                    marks = ", ".join("?" * len(cur.description))
                    self.db.executemany(f"INSERT OR REPLACE INTO {getattr(self.t, name)} VALUES ({marks})", cur)

        if take_over(self.db, legacy, copy):
            log.info("catalog %s: took over %s", self.path, legacy)

    def drop_collection(self, collection: str) -> None:
        """Drop the tables of ``collection`` (a collection the library no longer keeps)."""
        with self.db:
            for name in Tables(collection).__dict__.values():
                self.db.execute(f"DROP TABLE IF EXISTS {name}")

    def _create(self) -> None:
        self.db.executescript(
            f"CREATE TABLE IF NOT EXISTS {self.t.meta} (key TEXT PRIMARY KEY, value TEXT);"
            # path: the file name's bytes (os.fsencode), so any name a file system allows is kept
            f"CREATE TABLE IF NOT EXISTS {self.t.files} (id INTEGER PRIMARY KEY, path BLOB, size INTEGER,"
            " mtime_ns INTEGER, sha256 TEXT, width INTEGER, height INTEGER, format TEXT, model TEXT,"
            " problem TEXT);"
            f"CREATE TABLE IF NOT EXISTS {self.t.pairs} (a INTEGER, b INTEGER, sa INTEGER, sb INTEGER, cosine REAL,"
            " score REAL, how TEXT, transform INTEGER, scale REAL, outer_side TEXT, rect TEXT,"
            " PRIMARY KEY (a, b));"
            f"CREATE TABLE IF NOT EXISTS {self.t.searched} (scope TEXT, id INTEGER, stamp INTEGER, PRIMARY KEY (scope, id));"
            f"CREATE TABLE IF NOT EXISTS {self.t.groupings} (key TEXT PRIMARY KEY, groups TEXT);"
            f"CREATE TABLE IF NOT EXISTS {self.t.signatures} (id INTEGER PRIMARY KEY, stamp INTEGER, h INTEGER, w INTEGER,"
            " pixels BLOB, features BLOB);"
            f"CREATE TABLE IF NOT EXISTS {self.t.squares} (id INTEGER PRIMARY KEY, stamp INTEGER, pixels BLOB, share REAL);"
            f"CREATE TABLE IF NOT EXISTS {self.t.facts} (id INTEGER PRIMARY KEY, stamp INTEGER, facts TEXT);")

    def _check_settings(self, settings: dict) -> None:
        wanted = json.dumps({"format": FORMAT, **settings}, sort_keys=True)
        row = self.db.execute(f"SELECT value FROM {self.t.meta} WHERE key = 'settings'").fetchone()
        if row is None or row[0] != wanted:
            # what verification derived goes; the files and their signatures stay (features are
            # read again where verification needs them: pairs.attach_signatures)
            self.db.executescript(f"DELETE FROM {self.t.pairs}; DELETE FROM {self.t.searched}; DELETE FROM {self.t.groupings}; "
                                  f"UPDATE {self.t.signatures} SET features = NULL; DELETE FROM {self.t.squares}; DELETE FROM {self.t.facts};")
            self.db.execute(f"INSERT OR REPLACE INTO {self.t.meta} VALUES ('settings', ?)", (wanted,))
            self.db.commit()

    def close(self) -> None:
        self.db.close()

    # -- files --------------------------------------------------------------------
    def file_rows(self) -> list[tuple]:
        """Every file as a tuple in FILE_COLUMNS order (the path decoded)."""
        return [(i, os.fsdecode(p), *rest) for i, p, *rest in self.db.execute(f"SELECT {FILE_COLUMNS} FROM {self.t.files}")]

    def files(self, ids: list[int]) -> list[tuple]:
        out = []
        for k in range(0, len(ids), 500):
            chunk = ids[k:k + 500]
            out += [(i, os.fsdecode(p), *rest) for i, p, *rest in self.db.execute(
                f"SELECT {FILE_COLUMNS} FROM {self.t.files} WHERE id IN ({','.join('?' * len(chunk))})", chunk)]
        return out

    def photo_ids(self) -> set[int]:
        """The files that have a vector in Milvus: those that could be read."""
        return {i for (i,) in self.db.execute(f"SELECT id FROM {self.t.files} WHERE problem = ''")}

    def put_files(self, rows: Iterable[tuple]) -> None:
        """``rows``: tuples in FILE_COLUMNS order; the signatures go with add_signatures."""
        self.db.executemany(f"INSERT OR REPLACE INTO {self.t.files} ({FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            ((i, os.fsencode(p), *rest) for i, p, *rest in rows))
        self.db.commit()

    def drop_files(self, ids: list[int]) -> None:
        for k in range(0, len(ids), 500):
            chunk = ids[k:k + 500]
            marks = ",".join("?" * len(chunk))
            for table in (self.t.files, self.t.signatures, self.t.squares, self.t.facts):
                self.db.execute(f"DELETE FROM {table} WHERE id IN ({marks})", chunk)
        self.db.commit()

    def file_count(self) -> int:
        return self.db.execute(f"SELECT count(*) FROM {self.t.files}").fetchone()[0]

    def get_meta(self, key: str) -> Optional[str]:
        row = self.db.execute(f"SELECT value FROM {self.t.meta} WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute(f"INSERT OR REPLACE INTO {self.t.meta} VALUES (?, ?)", (key, value))
        self.db.commit()

    def positives(self, stamps: dict[int, int], min_score: float) -> dict:
        """(a, b) -> (cosine, match) for stored pairs scoring at least ``min_score`` whose two
        photos are in ``stamps`` unchanged."""
        good = {}
        for a, b, sa, sb, cos, score, how, t, scale, outer, rect in self.db.execute(
                f"SELECT a, b, sa, sb, cosine, score, how, transform, scale, outer_side, rect FROM {self.t.pairs} "
                "WHERE score >= ?", (min_score,)):
            if stamps.get(a) == sa and stamps.get(b) == sb:
                good[(a, b)] = (cos, verify.Match(score, how, t, scale, outer, tuple(json.loads(rect))))
        return good

    def verified(self, stamps: dict[int, int]) -> set[tuple[int, int]]:
        """Every stored pair, positive or not, whose two photos are in ``stamps`` unchanged."""
        return {(a, b) for a, b, sa, sb in self.db.execute(f"SELECT a, b, sa, sb FROM {self.t.pairs}")
                if stamps.get(a) == sa and stamps.get(b) == sb}

    def add(self, outcomes: dict[tuple[int, int], tuple[float, verify.Match]], stamps: dict[int, int]) -> None:
        # rows made as sqlite asks for them: a list of them all held a tuple of 11 values per
        # pair at once (a first scan of 100,000 photos verifies about a million pairs)
        self.db.executemany(
            f"INSERT OR REPLACE INTO {self.t.pairs} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((a, b, stamps[a], stamps[b], float(cos), float(m.score), m.how, int(m.transform), float(m.scale), m.outer,
              json.dumps([float(v) for v in m.rect])) for (a, b), (cos, m) in outcomes.items()))
        self.db.commit()

    def grouping(self, key: str) -> Optional[str]:
        """Groups stored under ``key`` (grouping.grouping_key), as grouping.groups_to_json wrote them."""
        row = self.db.execute(f"SELECT groups FROM {self.t.groupings} WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def add_grouping(self, key: str, groups: str) -> None:
        self.db.execute(f"INSERT OR REPLACE INTO {self.t.groupings} VALUES (?, ?)", (key, groups))
        # a few folder sets and similarity settings; older ones go
        self.db.execute(f"DELETE FROM {self.t.groupings} WHERE rowid NOT IN "
                        f"(SELECT rowid FROM {self.t.groupings} ORDER BY rowid DESC LIMIT ?)", (GROUPINGS_KEPT,))
        self.db.commit()

    def searched(self, scope: str, stamps: dict[int, int]) -> set[int]:
        return {i for i, s in self.db.execute(f"SELECT id, stamp FROM {self.t.searched} WHERE scope = ?", (scope,))
                if stamps.get(i) == s}

    def mark_searched(self, scope: str, stamps: dict[int, int]) -> None:
        self.db.executemany(f"INSERT OR REPLACE INTO {self.t.searched} VALUES (?, ?, ?)",
                            [(scope, i, s) for i, s in stamps.items()])
        self.db.commit()

    def signatures_held(self, stamps: dict[int, int]) -> set[int]:
        """The ids in ``stamps`` whose signature is stored for the file as it is now."""
        return {i for i, s in self.db.execute(f"SELECT id, stamp FROM {self.t.signatures}") if stamps.get(i) == s}

    def signatures(self, ids: Iterable[int]) -> dict:
        """id -> ((h, w) uint8 signature, packed features or None), for ids signatures_held returned."""
        out = {}
        ids = list(ids)
        for k in range(0, len(ids), 500):
            chunk = ids[k:k + 500]
            for i, h, w, pixels, feats in self.db.execute(
                    f"SELECT id, h, w, pixels, features FROM {self.t.signatures} WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                out[i] = (np.frombuffer(pixels, np.uint8).reshape(h, w), feats)
        return out

    def squares(self, stamps: dict[int, int]) -> dict:
        """id -> (content square (content.SQUARE² uint8), the content's share of the photo), for
        the ids in ``stamps`` whose square is stored for the file as it is now. Every photo read
        keeps one (256 bytes): a rescan compares a new photo's turns with all of them
        (candidates.turned_candidates), and the keeper is chosen by the content's pixels."""
        out = {}
        for i, s, pixels, share in self.db.execute(f"SELECT id, stamp, pixels, share FROM {self.t.squares}"):
            if stamps.get(i) == s:
                side = int(round(len(pixels) ** 0.5))
                out[i] = (np.frombuffer(pixels, np.uint8).reshape(side, side), share)
        return out

    def add_squares(self, squares: dict, stamps: dict[int, int]) -> None:
        self.db.executemany(f"INSERT OR REPLACE INTO {self.t.squares} VALUES (?, ?, ?, ?)",
                            [(i, stamps[i], sq.tobytes(), float(share)) for i, (sq, share) in squares.items()])
        self.db.commit()

    def facts(self, stamps: dict[int, int]) -> dict[int, dict]:
        """id -> originals.photo_facts, for the ids in ``stamps`` whose facts are stored for the
        file as it is now."""
        return {i: json.loads(f) for i, s, f in self.db.execute(f"SELECT id, stamp, facts FROM {self.t.facts}")
                if stamps.get(i) == s}

    def add_facts(self, facts: dict[int, dict], stamps: dict[int, int]) -> None:
        self.db.executemany(f"INSERT OR REPLACE INTO {self.t.facts} VALUES (?, ?, ?)",
                            [(i, stamps[i], json.dumps(f, sort_keys=True)) for i, f in facts.items()])
        self.db.commit()

    def add_signatures(self, signatures: dict, stamps: dict[int, int]) -> None:
        """``signatures``: id -> (signature, packed features or None)."""
        self.db.executemany(f"INSERT OR REPLACE INTO {self.t.signatures} VALUES (?, ?, ?, ?, ?, ?)",
                            [(i, stamps[i], sig.shape[0], sig.shape[1], sig.tobytes(), feats)
                             for i, (sig, feats) in signatures.items()])
        self.db.commit()

    def stage_costs(self) -> dict:
        """Seconds per photo of each scan stage as the last scan measured them (progress.ScanPlan)."""
        row = self.db.execute(f"SELECT value FROM {self.t.meta} WHERE key = 'stage_costs'").fetchone()
        try:
            return json.loads(row[0]) if row else {}
        except ValueError:
            return {}

    def set_stage_costs(self, costs: dict) -> None:
        self.db.execute(f"INSERT OR REPLACE INTO {self.t.meta} VALUES ('stage_costs', ?)", (json.dumps(costs),))
        self.db.commit()
