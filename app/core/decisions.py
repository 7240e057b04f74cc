"""What the user decided about groups: "not duplicates", remembered with the library.

A mark says that photos are different pictures. It is stored as pairs of contents (SHA-256 of
the bytes, so it follows a file that is moved or renamed, and covers its byte-identical copies)
and each pair it holds is left out of linking. Marking a whole group parts every member from
every other; marking one copy parts it from the rest of its group. Byte-identical files are the
same bytes, so no mark parts them.

Kept in the library's catalog file (catalog.location_for), in tables of their own outside any
model's collection: the catalog's verified pairs are emptied when verification or the model
changes, and a person's decisions must outlive that.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Iterable, Optional

from app import paths
from app.core import catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mark:
    id: int
    made: float  # time.time()
    what: str  # what the user marked, in words
    paths: tuple[str, ...]  # the files as they were when marked


def location_for(library_location: str) -> str:
    return catalog.location_for(library_location)


def legacy_location(library_location: str) -> str:
    """Where earlier versions of Doppel kept the marks, in a file of their own."""
    if "://" in library_location:
        digest = hashlib.sha1(library_location.encode()).hexdigest()[:16]
        return str(paths.data_dir() / "decisions" / f"{digest}.sqlite")
    return f"{os.path.abspath(library_location)}.decisions.sqlite"


def key(sha_a: str, sha_b: str) -> tuple[str, str]:
    return (sha_a, sha_b) if sha_a <= sha_b else (sha_b, sha_a)


class Decisions:
    def __init__(self, path: str, legacy: Optional[str] = None):
        """``path``: the library's catalog file. ``legacy``: a marks file of an earlier version,
        taken over once (renamed ``*.imported`` after)."""
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        # the scan may be writing the same file from its own process: wait for its commit
        self.db = sqlite3.connect(path, timeout=30)
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS marks (id INTEGER PRIMARY KEY, made REAL, what TEXT, paths TEXT);"
            "CREATE TABLE IF NOT EXISTS apart (a TEXT, b TEXT, mark INTEGER, PRIMARY KEY (a, b, mark));")
        if legacy and os.path.exists(legacy):
            self._take_over(legacy)

    def _take_over(self, legacy: str) -> None:
        def copy(old: sqlite3.Connection) -> None:
            # a mark gets a new id here; its parted pairs follow it
            for mid, made, what, shown in old.execute("SELECT id, made, what, paths FROM marks ORDER BY id").fetchall():
                cur = self.db.execute("INSERT INTO marks (made, what, paths) VALUES (?, ?, ?)", (made, what, shown))
                self.db.executemany("INSERT OR IGNORE INTO apart VALUES (?, ?, ?)",
                                    [(a, b, cur.lastrowid) for a, b in old.execute(
                                        "SELECT a, b FROM apart WHERE mark = ?", (mid,))])

        if catalog.take_over(self.db, legacy, copy):
            log.info("took over the marks of %s into %s", legacy, self.path)

    @classmethod
    def for_library(cls, library_location: str) -> "Decisions":
        return cls(location_for(library_location), legacy_location(library_location))

    def close(self) -> None:
        self.db.close()

    def apart(self) -> set[tuple[str, str]]:
        """Every pair of contents some mark parts (as ``key`` orders them)."""
        return {(a, b) for a, b in self.db.execute("SELECT DISTINCT a, b FROM apart")}

    def mark(self, what: str, files: Iterable[tuple[str, str]], parted: Optional[str] = None) -> Optional[Mark]:
        """Mark ``files`` ((path, sha256) of a group's members) as not duplicates: every one
        from every other, or, with ``parted`` (one of the paths), that one from the rest. None
        when nothing is parted (all the same bytes)."""
        files = list(files)
        if parted is None:
            pairs = {key(a, b) for i, (_, a) in enumerate(files) for _, b in files[i + 1:] if a != b}
        else:
            sha = next(s for p, s in files if p == parted)
            pairs = {key(sha, s) for _, s in files if s != sha}
        if not pairs:
            return None
        shown = (parted,) if parted else tuple(p for p, _ in files)
        made = time.time()
        with self.db:
            cur = self.db.execute("INSERT INTO marks (made, what, paths) VALUES (?, ?, ?)",
                                  (made, what, "\n".join(shown)))
            self.db.executemany("INSERT OR IGNORE INTO apart VALUES (?, ?, ?)",
                                [(a, b, cur.lastrowid) for a, b in sorted(pairs)])
        return Mark(cur.lastrowid, made, what, shown)

    def marks(self) -> list[Mark]:
        """Every mark, newest first."""
        return [Mark(i, made, what, tuple(p.split("\n")))
                for i, made, what, p in self.db.execute("SELECT id, made, what, paths FROM marks ORDER BY id DESC")]

    def forget(self, mark_id: int) -> None:
        """Undo a mark: its photos may be grouped again (unless another mark parts them)."""
        with self.db:
            self.db.execute("DELETE FROM apart WHERE mark = ?", (mark_id,))
            self.db.execute("DELETE FROM marks WHERE id = ?", (mark_id,))


def apart_for(library_location: str) -> set[tuple[str, str]]:
    """The library's parted pairs, or none when its decisions cannot be read (a scan goes on)."""
    path = location_for(library_location)
    if not os.path.exists(path) and not os.path.exists(legacy_location(library_location)):
        return set()
    try:
        d = Decisions.for_library(library_location)
        try:
            return d.apart()
        finally:
            d.close()
    except sqlite3.Error as exc:
        log.warning("decisions %s unreadable (%s): photos marked not duplicates may be grouped", path, exc)
        return set()
