"""The library: the catalog (catalog.py, SQLite) of the files read, and one Milvus collection per
model, in a Milvus Lite file or on a Milvus server, that holds each readable photo's vector.

The catalog is the truth about which files there are; Milvus holds id -> vector and answers
vector queries (docs/design.md, "The library"). A file that could not be decoded is in the
catalog with its problem (so an unchanged bad file is not decoded again on every rescan) and has
no vector. An unchanged rescan reads the catalog only and never starts Milvus.

The two are reconciled by id whenever they may disagree: a session that wrote to Milvus marks the
catalog unsynced first and synced again when it closes, so a session that died in between (a
crash, SIGKILL, a full disk) is followed by a reconciliation when the library is next opened:
vectors without a catalog row are deleted, catalog rows without a vector are dropped (their files
are read again). Writes go to Milvus first, then to the catalog.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from typing import Iterable, Optional

import numpy as np

from app.core import catalog as catalog_mod
from app.core.catalog import Catalog, CatalogError
from app.core.domain import Row

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: Milvus Lite's own lock only
    fcntl = None

log = logging.getLogger(__name__)


def _quiet_milvus_logs() -> None:
    # milvus-lite does not implement AllocTimestamp; pymilvus' query iterator logs a warning and
    # the in-process gRPC server an error for it on every iteration, then works as intended.
    # Write failures (disk full, ...) come back to us as exceptions and are reported once, in
    # words; the engine's own tracebacks would only bury that message.
    for name in ("pymilvus", "pymilvus.client.iterator.query_iterator", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


# 2: Milvus holds id and vector only; the rest is in the catalog.
SCHEMA_VERSION = 2
# Milvus Lite serves a library file over gRPC (LocalServer). pymilvus pings its
# channel every 10 s even with no call in flight, while that server keeps gRPC's default of one
# such ping per 5 minutes: after about two minutes without a library call (a scan verifying its
# pairs) it answers GOAWAY "too_many_pings", which gRPC prints on stderr as an error at the end of
# every long scan. The client reconnects and nothing is lost, but a local file needs no pings.
LOCAL_GRPC = {"grpc.keepalive_permit_without_calls": False}


class LibraryError(RuntimeError):
    """The library cannot be opened or written; the message is meant for people."""


class LibraryLockedError(LibraryError):
    pass


def path_id(path: str) -> int:
    raw = os.fsencode(path)
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)


def collection_name(model: str) -> str:
    return f"photos_v{SCHEMA_VERSION}_" + re.sub(r"[^0-9a-zA-Z_]", "_", model)


# HNSW's candidate list at query time: it must be at least k, and recall of the true top k grows
# with it; twice the k a scan asks for (candidates.TOP_K * 2 = 32).
SEARCH_EF = 64
# ids asked of Milvus per call (get, delete): well under its message size limit with vectors
CHUNK = 1000


def is_server_uri(location: str) -> bool:
    return location.startswith(("http://", "https://", "tcp://", "grpc://"))


def _owner_file(location: str) -> str:
    return os.path.abspath(location) + ".owner"


def _lock_file(location: str) -> str:
    """Doppel's own lock beside a local library: one Doppel at a time uses it (docs/design.md)."""
    return os.path.abspath(location) + ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(location: str) -> str:
    try:
        with open(_owner_file(location), encoding="utf-8") as f:
            return f.read().strip() or "another program"
    except OSError:
        return "another program"


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


def _serve_milvus_lite(data_dir: str, port: int, report) -> None:
    """A child process: Milvus Lite's own server for one library file (its documented
    ``milvus-lite server`` command). It ends with its parent (lifeline.py), ignores the terminal's
    Ctrl-C (the scan stops first and still writes what it read), and shuts down cleanly on
    SIGTERM, closing the library's files."""
    import signal
    import sys

    from app.core.lifeline import exit_with_parent
    from app.core.pools import name_process

    name_process("doppel-milvus")
    exit_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def stop(*_):
        raise KeyboardInterrupt  # what the server takes as "shut down cleanly"

    signal.signal(signal.SIGTERM, stop)
    sys.stdout = open(os.devnull, "w")  # its banner
    try:
        from milvus_lite.cmdline import main

        main(["server", "--data-dir", data_dir, "--host", "127.0.0.1", "--port", str(port)])
    except KeyboardInterrupt:
        pass
    except BaseException as exc:  # told to the parent, which words it for people
        report.send(f"{type(exc).__name__}: {exc}")


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """Milvus Lite serving one library file from a child process that this library owns: closing
    the library stops it, which lets go of the file (pymilvus would otherwise keep an in-process
    server, and the file, until the process exits)."""

    # Opening a library that a killed scan left replays its log first (up to a minute for a
    # large one); the server listens only after that.
    START_TIMEOUT = 180.0

    def __init__(self, data_dir: str):
        import multiprocessing
        import socket
        import time

        ctx = multiprocessing.get_context("spawn")
        self.port = _free_port()
        receive, report = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_serve_milvus_lite, args=(os.path.abspath(data_dir), self.port, report),
                                   name="doppel-milvus-lite")
        self.process.start()
        report.close()
        deadline = time.monotonic() + self.START_TIMEOUT
        while True:
            if receive.poll(0.05) or not self.process.is_alive():
                try:
                    error = receive.recv()
                except EOFError:  # it ended without a word
                    self.process.join(5)
                    error = f"Milvus Lite's server exited with code {self.process.exitcode}"
                self.process.join(5)
                raise (LibraryLockedError if "Locked" in error else LibraryError)(error)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise LibraryError(f"Milvus Lite did not start within {self.START_TIMEOUT:.0f} s")
        self.uri = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()  # SIGTERM: the server closes the library's files
            self.process.join(30)
        if self.process.is_alive():  # pragma: no cover - a server that does not stop
            self.process.kill()
            self.process.join(5)


class Library:
    """The catalog and the Milvus collection of one model. Not thread-safe: one thread owns the
    library (docs/design.md). Milvus is started (or the server connected) on first use: an
    unchanged rescan never needs it."""

    def __init__(self, location: str, model: str, dim: int, user: str = "Doppel", progress=None,
                 token: str = "", database: str = ""):
        """``location``: a Milvus Lite file, or a Milvus server's URI; for a server, ``token``
        ("user:password" or an API key) and ``database`` (empty: the server's default one)."""
        self.uri = location
        # what names this library (catalog, decisions, reports): a server's URI with its
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
        self._local: Optional[LocalServer] = None  # a Milvus Lite file's server, while started
        self._closed = False
        self._lock_fd: Optional[int] = None
        self._writing = False  # this session marked the catalog unsynced (it writes to Milvus)
        self._write_error = False
        if not is_server_uri(location):
            parent = os.path.dirname(os.path.abspath(location)) or "."
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"cannot create the library folder {parent}: {exc.strerror or exc}") from exc
            if not os.access(parent, os.W_OK) or (os.path.exists(location) and not os.access(location, os.W_OK)):
                raise LibraryError(f"the library location {location} is read-only; choose another with --library")
            self._take_lock()
        try:
            self.catalog = Catalog(catalog_mod.location_for(self.location), catalog_mod.verification_settings(),
                                   self.collection, legacy=catalog_mod.legacy_location(self.location, self.collection))
        except CatalogError as exc:
            self._release_lock()
            raise LibraryError(str(exc)) from exc
        # A library whose last writer did not close it, or whose Milvus part is gone while the
        # catalog lists photos, is reconciled now, before anyone reads the catalog.
        if self.catalog.get_meta("synced") != "1" or (
                not self.is_server and not os.path.exists(location) and self.catalog.file_count()):
            try:
                self._open()
            except BaseException:
                self._stop_local()
                self.catalog.close()
                self._release_lock()
                raise

    def _take_lock(self) -> None:
        if fcntl is None:  # pragma: no cover - Windows: Milvus Lite refuses a second user itself
            return
        try:
            fd = os.open(_lock_file(self.location), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise LibraryError(f"cannot open the library {self.location}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _locked(self.location, _holder(self.location))
        self._lock_fd = fd
        if self._progress is not None and interrupted_before(self.location):
            self._progress.note("The last scan was interrupted; the library is recovering its log "
                                "(this can take up to a minute)…")
        self._write_owner()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            try:
                os.unlink(_owner_file(self.location))
            except OSError:
                pass
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
        location = self.uri
        try:
            if self.is_server:
                self._client = MilvusClient(location, **self._server_options)
            else:
                self._local = self._start_local(location)
                self._client = MilvusClient(self._local.uri, grpc_options=LOCAL_GRPC)
        except LibraryLockedError as exc:
            raise LibraryLockedError(
                f"the library {location} is in use by another program ({exc}); close it and try again, "
                "or pick another library") from exc
        except Exception as exc:
            self._stop_local()
            raise LibraryError(f"cannot open the library {location}: {exc}") from exc
        self._drop_old_schemas()
        self._ensure_collection()
        if self.catalog.get_meta("synced") != "1" or self.is_server or not self._vectors_match_catalog():
            self._reconcile()

    @staticmethod
    def _start_local(location: str) -> LocalServer:
        """The file's server. Doppel's own lock is ours, so a Milvus Lite lock held by another is
        another program's, or the server of a Doppel killed a moment ago, which ends within
        lifeline.POLL of its parent: asked again for a few of those before it is refused."""
        import time

        from app.core.lifeline import POLL

        deadline = time.monotonic() + 10 * POLL
        while True:
            try:
                return LocalServer(location)
            except LibraryLockedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(POLL)

    def _vectors_match_catalog(self) -> bool:
        """A cheap check that the collection is the one the catalog was written with (a library
        folder replaced or emptied behind Doppel's back): the same number of vectors."""
        return self.count() == len(self.catalog.photo_ids())

    def _milvus_ids(self) -> set[int]:
        out: set[int] = set()
        it = self._client.query_iterator(self.collection, batch_size=5000, filter="", output_fields=["id"],
                                         consistency_level="Strong")
        try:
            while True:
                rows = it.next()
                if not rows:
                    break
                out.update(r["id"] for r in rows)
        finally:
            it.close()
        return out

    def _reconcile(self) -> None:
        """Make the catalog and Milvus agree by id: a vector without a catalog row is deleted, a
        catalog photo without a vector is dropped from the catalog (its file is read again)."""
        in_milvus = self._milvus_ids()
        listed = self.catalog.photo_ids()
        orphans = sorted(in_milvus - listed)
        lost = sorted(listed - in_milvus)
        for i in range(0, len(orphans), CHUNK):
            self._client.delete(self.collection, ids=orphans[i:i + CHUNK])
        self.catalog.drop_files(lost)
        if orphans or lost:
            log.warning("library %s reconciled: %d vectors without a catalog entry deleted, %d photos "
                        "without a vector will be read again", self.location, len(orphans), len(lost))
        self.catalog.set_meta("synced", "1")

    def _drop_old_schemas(self) -> None:
        """Collections of an older schema version are rebuilt: their photos are read again."""
        current = f"photos_v{SCHEMA_VERSION}_"
        for name in self._client.list_collections():
            m = re.match(r"photos_v(\d+)_", name)
            if m and not name.startswith(current):
                self._client.drop_collection(name)
                self.catalog.drop_collection(name)
                self.notices.append(f"The library was written by an older Doppel (schema v{m.group(1)}); "
                                    "it was rebuilt and its photos will be read again.")
                if not self.is_server:  # what that version kept beside the library
                    for suffix in ("pairs.sqlite", "rows.sqlite", "catalog.sqlite"):
                        try:
                            os.unlink(f"{os.path.abspath(self.location)}.{name}.{suffix}")
                        except OSError:
                            pass

    # -- schema ---------------------------------------------------------------
    def _ensure_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        if not self._client.has_collection(self.collection):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            index = self._client.prepare_index_params()
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
            self._client.create_collection(self.collection, schema=schema, index_params=index,
                                           consistency_level="Strong")
        self._client.load_collection(self.collection)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._client is not None:
                try:
                    self._client.close()
                except Exception:  # pragma: no cover - best effort
                    pass
            self._stop_local()
            if self._writing and not self._write_error:
                # every write of this session reached both: the next session may trust the catalog
                self.catalog.set_meta("synced", "1")
        finally:
            self.catalog.close()
            self._release_lock()

    def _stop_local(self) -> None:
        if self._local is not None:
            self._local.stop()
            self._local = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reads ----------------------------------------------------------------
    def _rows(self, tuples: Iterable[tuple]) -> list[Row]:
        return [Row(*t, signature=None) for t in tuples]

    def _attach_signatures(self, rows: list[Row]) -> None:
        stamps = {r.id: catalog_mod.stamp(r.size, r.mtime_ns) for r in rows}
        held = self.catalog.signatures(self.catalog.signatures_held(stamps))
        for r in rows:
            if r.id in held:
                r.signature = held[r.id][0]

    def rows(self, paths_under: Optional[Iterable[str]] = None, with_signature: bool = False) -> list[Row]:
        rows = self._rows(self.catalog.file_rows())
        if paths_under is not None:
            roots = [os.path.join(os.path.abspath(p), "") for p in paths_under]
            rows = [r for r in rows if any(r.path.startswith(root) for root in roots)]
        if with_signature:
            self._attach_signatures(rows)
        return rows

    def get(self, ids: list[int], with_vector: bool = False, with_signature: bool = True) -> list[Row]:
        if not ids:
            return []
        rows = self._rows(self.catalog.files(list(ids)))
        if with_signature:
            self._attach_signatures(rows)
        if with_vector:
            wanted = [r.id for r in rows if not r.problem]
            vectors = {}
            for i in range(0, len(wanted), CHUNK):
                for hit in self.client.get(self.collection, ids=wanted[i:i + CHUNK], output_fields=["vector"],
                                           consistency_level="Strong"):
                    vectors[hit["id"]] = np.asarray(hit["vector"], dtype=np.float32)
            for r in rows:
                r.vector = vectors.get(r.id)
        return rows

    def count(self) -> int:
        """The number of vectors in Milvus (the catalog's photos that could be read)."""
        # count(*) sees unflushed rows on a server too; collection stats only count flushed ones
        try:
            res = self.client.query(self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
            return int(res[0]["count(*)"])
        except Exception:
            return int(self.client.get_collection_stats(self.collection).get("row_count", 0))

    # -- writes ---------------------------------------------------------------
    def _will_write(self) -> None:
        """Before this session's first write to Milvus: until it closes, the catalog may lag."""
        if not self._writing:
            self.catalog.set_meta("synced", "0")
            self._writing = True

    def _write_failed(self, exc: Exception) -> LibraryError:
        self._write_error = True  # the two parts may disagree: the next open reconciles them
        reason = getattr(exc, "message", None) or str(exc)
        return LibraryError(f"cannot write to the library {self.location}: {reason}")

    def upsert(self, rows: list[Row]) -> None:
        """Store rows: the vectors of readable ones in Milvus, then every row and its signature in
        the catalog. A row with a problem has no vector (one it had before is deleted)."""
        if not rows:
            return
        client = self.client
        self._will_write()
        if any(r.vector is None for r in rows if not r.problem):
            raise ValueError("a readable photo is stored with its vector")
        vectors = [{"id": r.id, "vector": np.asarray(r.vector, np.float32).tolist()} for r in rows if not r.problem]
        unreadable = [r.id for r in rows if r.problem]
        try:
            if vectors:
                client.upsert(self.collection, vectors)
            if unreadable:
                client.delete(self.collection, ids=unreadable)
        except Exception as exc:
            raise self._write_failed(exc) from exc
        try:
            self.catalog.put_files((r.id, r.path, int(r.size), int(r.mtime_ns), r.sha256, int(r.width),
                                    int(r.height), r.format, self.model, r.problem) for r in rows)
            self.catalog.add_signatures({r.id: r.evidence() for r in rows if r.signature is not None},
                                        {r.id: catalog_mod.stamp(r.size, r.mtime_ns) for r in rows})
        except Exception as exc:
            raise self._write_failed(exc) from exc

    def delete(self, ids: list[int]) -> None:
        if not ids:
            return
        client = self.client
        self._will_write()
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            try:
                client.delete(self.collection, ids=chunk)
            except Exception as exc:
                raise self._write_failed(exc) from exc
            self.catalog.drop_files(chunk)

    # -- search ---------------------------------------------------------------
    def neighbours(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k inner-product neighbours among the library's photos, ids and scores only."""
        res = self.client.search(self.collection, data=vectors.astype(np.float32).tolist(), limit=k,
                                 anns_field="vector", output_fields=["id"],
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
