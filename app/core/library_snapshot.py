"""A copy of a local library's small columns, so that an unchanged rescan never starts Milvus Lite.

An unchanged rescan needs only each stored file's identity (path, size, mtime) and the pairs
remembered in pair_cache.py. Importing pymilvus, starting Milvus Lite and querying the rows'
metadata took 3 of the 4 s of a 5,000-file rescan on an AVX2 2-core machine.

The snapshot holds those rows as the library had them when Doppel last closed it, together with
a fingerprint of the library's files taken after the close: every file's name, size and mtime,
and the manifests' contents. It is trusted only while the files are exactly as fingerprinted.
Any write since then changes them: a Doppel killed mid-scan, another program using the file.
The library is then asked again. Deleting the snapshot costs one slower rescan.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from typing import Iterable, Optional

log = logging.getLogger(__name__)

FORMAT = 1
_COLUMNS = "id, path, size, mtime_ns, sha256, width, height, format, model, problem"


def location_for(library_location: str, collection: str) -> str:
    return f"{os.path.abspath(library_location)}.{collection}.rows.sqlite"


def files_stamp(library_location: str) -> Optional[str]:
    """A fingerprint of a Milvus Lite library folder's files; None when it is not a folder."""
    root = os.path.abspath(library_location)
    if not os.path.isdir(root):
        return None
    h = hashlib.blake2b(digest_size=20)
    try:
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                st = os.stat(path)
                h.update(f"{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(
                    "utf-8", "surrogateescape"))
                # A rewrite within one mtime tick (coarse clocks, FAT) still changes the manifest
                # that lists the data files, so its contents are part of the fingerprint.
                if name.startswith("manifest") and st.st_size < 1 << 20:
                    with open(path, "rb") as f:
                        h.update(f.read())
    except OSError as exc:
        log.info("library files not fingerprinted (%s): the library will be asked", exc)
        return None
    return h.hexdigest()


def load(path: str, stamp: str, collection: str) -> Optional[list[tuple]]:
    """The stored rows as tuples in _COLUMNS order, or None when the snapshot does not match."""
    if not os.path.isfile(path):
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta"))
            if meta.get("format") != str(FORMAT) or meta.get("stamp") != stamp or meta.get("collection") != collection:
                return None
            return db.execute(f"SELECT {_COLUMNS} FROM rows").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        log.info("library snapshot %s unreadable (%s): the library will be asked", path, exc)
        return None


def save(path: str, stamp: str, collection: str, rows: Iterable[tuple]) -> None:
    """Write the snapshot whole into a new file, then move it in place: never half written."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        if os.path.exists(tmp):
            os.unlink(tmp)
        db = sqlite3.connect(tmp)
        try:
            db.executescript(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
                "CREATE TABLE rows (id INTEGER PRIMARY KEY, path TEXT, size INTEGER, mtime_ns INTEGER,"
                " sha256 TEXT, width INTEGER, height INTEGER, format TEXT, model TEXT, problem TEXT);")
            db.executemany(f"INSERT INTO rows ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO meta VALUES (?, ?)",
                           [("format", str(FORMAT)), ("stamp", stamp), ("collection", collection)])
            db.commit()
        finally:
            db.close()
        os.replace(tmp, path)
    except (sqlite3.Error, OSError) as exc:
        log.warning("library snapshot %s not written (%s): the next rescan asks the library", path, exc)
        discard(tmp)
        discard(path)


def discard(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
