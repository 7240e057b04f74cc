"""The library: one Milvus collection per model, in a Milvus Lite file or on a Milvus server.

Each row is one file: its identity (path, size, mtime_ns), content hash, size in pixels, the
model that made its vector, a small grayscale signature for verification, and the vector. A file
that could not be decoded is stored too (with its problem and a zero vector, excluded from
search), so an unchanged bad file is not decoded again on every rescan.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np

from app.core import library_snapshot

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no snapshot, Milvus Lite's own lock only
    fcntl = None

log = logging.getLogger(__name__)


def _quiet_milvus_logs() -> None:
    # milvus-lite does not implement AllocTimestamp; pymilvus' query iterator logs a warning and
    # the in-process gRPC server an error for it on every iteration, then works as intended.
    # Write failures (disk full, ...) come back to us as exceptions and are reported once, in
    # words; the engine's own tracebacks would only bury that message.
    for name in ("pymilvus", "pymilvus.client.iterator.query_iterator", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _skip_client_string_checks() -> None:
    # pymilvus checks a row's string value by iterating over it one character at a time (a 9 KB
    # signature: 9,000 isinstance/len calls), which cost the scan's main process 2.5 s per
    # 1,000 photos, beside the model. Our strings are bounded before they are sent (upsert) and
    # the engine enforces each field's max_length itself.
    try:
        from pymilvus.client import entity_helper

        if hasattr(entity_helper, "CHECK_STR_ARRAY"):
            entity_helper.CHECK_STR_ARRAY = False
    except ImportError:  # pragma: no cover - another pymilvus layout: keep its checks
        pass


SCHEMA_VERSION = 1
MAX_PATH = 4096
# Milvus Lite serves a library file over gRPC from a thread of this process. pymilvus pings its
# channel every 10 s even with no call in flight, while that server keeps gRPC's default of one
# such ping per 5 minutes: after about two minutes without a library call (a scan verifying its
# pairs) it answers GOAWAY "too_many_pings", which gRPC prints on stderr as an error at the end of
# every long scan. The client reconnects and nothing is lost, but a local file needs no pings.
LOCAL_GRPC = {"grpc.keepalive_permit_without_calls": False}
MAX_SIGNATURE = 16384  # base64 of a 96 px grayscale signature fits easily


QUERY_LIMIT = 16384  # Milvus's cap on offset + limit of one query


class LibraryError(RuntimeError):
    """The library cannot be opened or written; the message is meant for people."""


class LibraryLockedError(LibraryError):
    pass


@dataclass
class Row:
    id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str
    width: int
    height: int
    format: str
    model: str
    problem: str
    signature: Optional[np.ndarray]  # (h, w) uint8
    vector: Optional[np.ndarray] = None
    # content.pack()ed local features: kept in the pair cache beside the library, not in Milvus
    # (34 kB a photo that Milvus Lite would hold in memory, and only verification reads them)
    features: Optional[bytes] = None
    # The content's share of the photo's area (content.py: a border, bars or a mat take the rest);
    # known after the scan's search stage, from the features or the pair cache. Not in Milvus.
    content_share: float = 1.0
    # originals.photo_facts (colour, camera, date, RAW): what the keeper is chosen on; kept in the
    # pair cache, not in Milvus. None: not known (the keeper then goes by the rest).
    facts: Optional[dict] = None

    def evidence(self):
        """What verification reads: (signature, features), or None before they are attached."""
        return None if self.signature is None else (self.signature, self.features)


def _meta(r: Row) -> Row:
    """The row without its signature and vector (what the snapshot keeps)."""
    return dataclasses.replace(r, signature=None, vector=None, features=None)


def path_id(path: str) -> int:
    raw = os.fsencode(path)
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)


def encode_path(path: str) -> str:
    """Milvus strings are UTF-8; non-UTF-8 file names (surrogate escapes) are kept reversibly."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return "b64:" + base64.b64encode(os.fsencode(path)).decode("ascii")


def decode_path(stored: str) -> str:
    if stored.startswith("b64:"):
        return os.fsdecode(base64.b64decode(stored[4:]))
    return stored


def encode_signature(sig: Optional[np.ndarray]) -> str:
    if sig is None:
        return ""
    h, w = sig.shape
    return f"{w}x{h}:" + base64.b64encode(sig.tobytes()).decode("ascii")


def decode_signature(text: str) -> Optional[np.ndarray]:
    if not text:
        return None
    dims, _, data = text.partition(":")
    w, h = (int(v) for v in dims.split("x"))
    return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(h, w)


def collection_name(model: str) -> str:
    return f"photos_v{SCHEMA_VERSION}_" + re.sub(r"[^0-9a-zA-Z_]", "_", model)


# HNSW's candidate list at query time: it must be at least k, and recall of the true top k grows
# with it; twice the k a scan asks for (grouping.TOP_K * 2 = 32).
SEARCH_EF = 64


def is_server_uri(location: str) -> bool:
    return location.startswith(("http://", "https://", "tcp://", "grpc://"))


_META_FIELDS = ["id", "path", "size", "mtime_ns", "sha256", "width", "height", "format", "model", "problem"]


def _owner_file(location: str) -> str:
    return os.path.abspath(location) + ".owner"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def probe_lock(location: str) -> Optional[str]:
    """None if a Milvus Lite file is free; otherwise who holds it, for the message."""
    lock = os.path.join(location, "LOCK")
    if not os.path.exists(lock):
        return None
    if fcntl is None:  # pragma: no cover - Windows: let milvus-lite report it
        return None
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except OSError:
        try:
            with open(_owner_file(location), encoding="utf-8") as f:
                return f.read().strip() or "another program"
        except OSError:
            return "another program"
    finally:
        os.close(fd)


def _locked(location: str, holder: str) -> LibraryLockedError:
    return LibraryLockedError(f"the library {location} is in use by {holder}; close it first, "
                              "or pick another library with --library")


def interrupted_before(location: str) -> bool:
    """True when the last process that used this file died without closing it (SIGKILL, crash)."""
    try:
        with open(_owner_file(location), encoding="utf-8") as f:
            pid = int(f.read().split("pid ")[1].split(")")[0])
    except (OSError, ValueError, IndexError):
        return False
    return pid != os.getpid() and not _pid_alive(pid)


class Library:
    """Owns one pymilvus client. Not thread-safe: one thread owns the library (docs/design.md).

    A local library whose snapshot (library_snapshot.py) matches its files holds Milvus Lite's
    lock itself and starts Milvus only when something needs more than the rows' metadata.
    """

    def __init__(self, location: str, model: str, dim: int, user: str = "Doppel", progress=None,
                 token: str = "", database: str = ""):
        """``location``: a Milvus Lite file, or a Milvus server's URI; for a server, ``token``
        ("user:password" or an API key) and ``database`` (empty: the server's default one)."""
        self.uri = location
        # what names this library (pair cache, decisions, reports): a server's URI with its
        # database, never the token
        self.location = f"{location}#{database}" if database and is_server_uri(location) else location
        self._server_options = {k: v for k, v in (("token", token), ("db_name", database)) if v}
        self.notices: list[str] = []
        self.model = model
        self.dim = dim
        self.collection = collection_name(model)
        self.user = user
        self._progress = progress
        self._client = None
        self._closed = False
        # Every row's metadata while this session knows them all (read whole, or from the snapshot),
        # kept current through upsert and delete: written as the snapshot on close.
        self._known: Optional[dict[int, Row]] = None
        self._lock_fd: Optional[int] = None
        self._trusted_stamp: Optional[str] = None
        self._snapshot = None
        if not is_server_uri(location):
            parent = os.path.dirname(os.path.abspath(location)) or "."
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"cannot create the library folder {parent}: {exc.strerror or exc}") from exc
            if not os.access(parent, os.W_OK) or (os.path.exists(location) and not os.access(location, os.W_OK)):
                raise LibraryError(f"the library location {location} is read-only; choose another with --library")
            holder = probe_lock(location)
            if holder:
                raise _locked(location, holder)
            if fcntl is not None:
                self._snapshot = library_snapshot.location_for(location, self.collection)
                self._open_from_snapshot()
        if self._known is None:
            self._open()

    def _open_from_snapshot(self) -> None:
        """Take the library's lock and, when the snapshot matches its files, answer from it alone."""
        try:
            fd = os.open(os.path.join(self.location, "LOCK"), os.O_RDWR)
        except OSError:
            return  # a new library, or no lock file yet: Milvus Lite creates it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _locked(self.location, probe_lock(self.location) or "another program")
        # taken under the lock: no one can write between the fingerprint and our last use of it
        stamp = library_snapshot.files_stamp(self.location)
        stored = library_snapshot.load(self._snapshot, stamp, self.collection) if stamp else None
        if stored is None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            return
        self._lock_fd, self._trusted_stamp = fd, stamp
        self._known = {}
        for i, path, size, mtime_ns, sha, w, h, fmt, model, problem in stored:
            self._known[i] = Row(i, decode_path(path), size, mtime_ns, sha, w, h, fmt, model, problem, None)
        self._write_owner()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _write_owner(self) -> None:
        try:
            with open(_owner_file(self.location), "w", encoding="utf-8") as f:
                f.write(f"{self.user} (pid {os.getpid()})")
        except OSError:
            pass

    @property
    def client(self):
        """The pymilvus client, started on first use (an unchanged rescan may never need it)."""
        if self._client is None:
            self._open()
        return self._client

    @property
    def is_server(self) -> bool:
        return is_server_uri(self.uri)

    @property
    def started(self) -> bool:
        """Whether this session has started Milvus (or connected to the server)."""
        return self._client is not None

    def _open(self) -> None:
        from pymilvus import MilvusClient

        _quiet_milvus_logs()
        _skip_client_string_checks()
        location = self.uri
        local = not is_server_uri(location)
        # Milvus Lite takes the same lock itself. Another program could start and write between
        # the two: the fingerprint below notices, and this session's view, stale by then, is not
        # written as the next snapshot.
        self._release_lock()
        if local and self._progress is not None and interrupted_before(location):
            self._progress.note("The last scan was interrupted; the library is recovering its log "
                                "(this can take up to a minute)…")
        try:
            self._client = MilvusClient(location, **({"grpc_options": LOCAL_GRPC} if local else self._server_options))
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            if "Locked" in text or "lock" in text.lower():
                raise LibraryLockedError(
                    f"the library {location} is in use by another Doppel (or another program); "
                    "close it and try again, or pick another library") from exc
            raise LibraryError(f"cannot open the library {location}: {exc}") from exc
        if local:
            self._write_owner()
        if self._trusted_stamp is not None and library_snapshot.files_stamp(location) != self._trusted_stamp:
            log.warning("the library %s changed while this session relied on its snapshot", location)
            self._known = None
        self._trusted_stamp = None
        self._drop_old_schemas()
        self._ensure_collection()

    def _drop_old_schemas(self) -> None:
        """Collections of an older schema version are rebuilt: their photos are read again."""
        current = f"photos_v{SCHEMA_VERSION}_"
        for name in self.client.list_collections():
            m = re.match(r"photos_v(\d+)_", name)
            if m and not name.startswith(current):
                self.client.drop_collection(name)
                self.notices.append(f"The library was written by an older Doppel (schema v{m.group(1)}); "
                                    "it was rebuilt and its photos will be read again.")

    # -- schema ---------------------------------------------------------------
    def _ensure_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        if not self.client.has_collection(self.collection):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH * 2)
            schema.add_field("size", DataType.INT64)
            schema.add_field("mtime_ns", DataType.INT64)
            schema.add_field("sha256", DataType.VARCHAR, max_length=64)
            schema.add_field("width", DataType.INT64)
            schema.add_field("height", DataType.INT64)
            schema.add_field("format", DataType.VARCHAR, max_length=32)
            schema.add_field("model", DataType.VARCHAR, max_length=128)
            schema.add_field("problem", DataType.VARCHAR, max_length=1024)
            schema.add_field("signature", DataType.VARCHAR, max_length=MAX_SIGNATURE)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            index = self.client.prepare_index_params()
            if self.is_server:
                # A server searches a whole library's nearest neighbours itself: exact search costs
                # every vector per query (a million photos, a million queries), a graph a few
                # hundred. HNSW with the usual build settings; SEARCH_EF at query time.
                index.add_index("vector", index_type="HNSW", metric_type="IP",
                                params={"M": 16, "efConstruction": 200})
            else:
                # FLAT: exact inner product; milvus-lite answers no faster with a graph, and a whole
                # local library is searched in-process (search.py)
                index.add_index("vector", index_type="FLAT", metric_type="IP")
            self.client.create_collection(self.collection, schema=schema, index_params=index,
                                          consistency_level="Strong")
        self.client.load_collection(self.collection)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._client is None:  # answered from the snapshot: nothing was written
            if self._lock_fd is not None:
                self._release_lock()
                library_snapshot.discard(_owner_file(self.location))
            return
        try:
            self._client.close()
        except Exception:  # pragma: no cover - best effort
            pass
        if not is_server_uri(self.location):
            # pymilvus keeps the in-process Milvus Lite server (and its file lock) until the
            # process exits; release it so another Doppel can use the library once we are done.
            released = True
            try:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.location)
            except Exception:  # pragma: no cover - older milvus-lite without a server manager
                released = False
            # Fingerprinted once Milvus Lite has closed its files; a server still running could
            # write after it, so then there is no snapshot.
            stamp = library_snapshot.files_stamp(self.location) if released else None
            if self._snapshot is not None and self._known is not None and stamp:
                library_snapshot.save(self._snapshot, stamp, self.collection,
                                      ((r.id, encode_path(r.path), r.size, r.mtime_ns, r.sha256, r.width, r.height,
                                        r.format, r.model, r.problem) for r in self._known.values()))
            library_snapshot.discard(_owner_file(self.location))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reads ----------------------------------------------------------------
    def _iterate(self, fields: list[str], expr: str = "", batch: int = 2000) -> Iterator[dict]:
        if not {"signature", "vector"} & set(fields):
            # Small rows come back in one query when there are few enough (a rescan's diff reads
            # 5,000 in 0.3 s this way, 0.45-0.6 s through the iterator); more need the iterator.
            rows = self.client.query(self.collection, filter=expr, output_fields=fields, limit=QUERY_LIMIT,
                                     consistency_level="Strong")
            if len(rows) < QUERY_LIMIT:
                yield from rows
                return
        it = self.client.query_iterator(self.collection, batch_size=batch, filter=expr, output_fields=fields,
                                        consistency_level="Strong")
        try:
            while True:
                rows = it.next()
                if not rows:
                    break
                yield from rows
        finally:
            it.close()

    def _row(self, r: dict, with_vector: bool = False) -> Row:
        vec = np.asarray(r["vector"], dtype=np.float32) if with_vector and "vector" in r else None
        return Row(r["id"], decode_path(r["path"]), r["size"], r["mtime_ns"], r["sha256"], r["width"], r["height"],
                   r["format"], r["model"], r["problem"], decode_signature(r.get("signature", "")), vec)

    def rows(self, paths_under: Optional[Iterable[str]] = None, with_signature: bool = False) -> list[Row]:
        if self._known is not None and not with_signature:
            rows = [dataclasses.replace(r) for r in self._known.values()]  # callers attach signatures
        else:
            fields = _META_FIELDS + (["signature"] if with_signature else [])
            rows = [self._row(r) for r in self._iterate(fields)]
            if self._snapshot is not None:
                self._known = {r.id: _meta(r) for r in rows}
        if paths_under is not None:
            roots = [os.path.join(os.path.abspath(p), "") for p in paths_under]
            rows = [r for r in rows if any(r.path.startswith(root) for root in roots)]
        return rows

    def get(self, ids: list[int], with_vector: bool = False, with_signature: bool = True) -> list[Row]:
        if not ids:
            return []
        fields = _META_FIELDS + (["signature"] if with_signature else []) + (["vector"] if with_vector else [])
        out = []
        for i in range(0, len(ids), 1000):
            out += [self._row(r, with_vector) for r in self.client.get(self.collection, ids=ids[i:i + 1000],
                                                                       output_fields=fields, consistency_level="Strong")]
        return out

    def count(self) -> int:
        # count(*) sees unflushed rows on a server too; collection stats only count flushed ones
        try:
            res = self.client.query(self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
            return int(res[0]["count(*)"])
        except Exception:
            return int(self.client.get_collection_stats(self.collection).get("row_count", 0))

    # -- writes ---------------------------------------------------------------
    def upsert(self, rows: list[Row]) -> None:
        if not rows:
            return
        data, stored = [], []
        for r in rows:
            m = dataclasses.replace(r, size=int(r.size), mtime_ns=int(r.mtime_ns), width=int(r.width),
                                    height=int(r.height), format=r.format[:32], model=self.model,
                                    problem=r.problem[:1000], signature=None, vector=None, features=None)
            stored.append(m)
            vec = r.vector if r.vector is not None else np.zeros(self.dim, np.float32)
            data.append({"id": m.id, "path": encode_path(m.path), "size": m.size, "mtime_ns": m.mtime_ns,
                         "sha256": m.sha256, "width": m.width, "height": m.height, "format": m.format,
                         "model": m.model, "problem": m.problem,
                         "signature": encode_signature(r.signature), "vector": vec.astype(np.float32).tolist()})
        try:
            self.client.upsert(self.collection, data)
        except Exception as exc:
            self._known = None  # the write may have landed in part
            reason = getattr(exc, "message", None) or str(exc)
            raise LibraryError(f"cannot write to the library {self.location}: {reason}") from exc
        if self._known is not None:
            self._known.update((m.id, m) for m in stored)

    def delete(self, ids: list[int]) -> None:
        for i in range(0, len(ids), 1000):
            chunk = ids[i:i + 1000]
            try:
                self.client.delete(self.collection, ids=chunk)
            except Exception:
                self._known = None
                raise
            if self._known is not None:
                for j in chunk:
                    self._known.pop(j, None)

    # -- search ---------------------------------------------------------------
    def neighbours(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k inner-product neighbours among decodable rows, ids and scores only."""
        res = self.client.search(self.collection, data=vectors.astype(np.float32).tolist(), limit=k,
                                 anns_field="vector", filter='problem == ""', output_fields=["id"],
                                 search_params={"metric_type": "IP",
                                                **({"params": {"ef": max(SEARCH_EF, k)}} if self.is_server else {})},
                                 # a Milvus server answers "Bounded" by default: rows written a
                                 # moment ago would be missing from the grouping
                                 consistency_level="Strong")
        return [[(hit["id"], float(hit["distance"])) for hit in hits] for hits in res]

    def vectors(self, ids: list[int]) -> np.ndarray:
        rows = self.get(ids, with_vector=True, with_signature=False)
        by_id = {r.id: r.vector for r in rows}
        return np.stack([by_id[i] for i in ids]) if ids else np.zeros((0, self.dim), np.float32)
