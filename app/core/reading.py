"""Reading: files decoded and fingerprinted in worker processes, in order, overlapped with the
model that embeds them (docs/design.md, steps 3-4). A worker that crashes on a file is replaced
and the file becomes a problem entry."""
from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator

from app.core import pools
from app.core.decode import Decoded, decode_file
from app.core.progress import Progress
from app.core.walk import FileEntry

log = logging.getLogger(__name__)

INLINE_BELOW = 24  # few files: decoding in-process beats starting worker processes


def default_workers() -> int:
    cpus = os.cpu_count() or 1
    return max(1, min(6, cpus))  # measured on 2 cores: 2 decoders beat 1 by 25 %, the model waits on them


def _crashed(entry: FileEntry) -> Decoded:
    return Decoded(entry, problem="the image decoder crashed on this file (damaged or hostile data)")


def _decode_isolated(entry: FileEntry) -> Decoded:
    """Decode one file alone in a fresh process, so a crash is pinned on that file."""
    with pools.start(1) as ex:
        try:
            return ex.submit(decode_file, entry).result()
        except BrokenProcessPool:
            return _crashed(entry)


def decode_all(entries: list[FileEntry], workers: int, progress: Progress) -> Iterator[Decoded]:
    """Decode in worker processes, in order, overlapped with whatever consumes the iterator.

    A worker that dies (a decoder segfault, the OOM killer) breaks the pool: the files that were
    in flight are retried one by one in isolation and the one that kills its process becomes a
    problem entry; the scan goes on with a fresh pool.
    """
    if workers <= 0 or len(entries) < INLINE_BELOW:
        for e in entries:
            progress.check()
            yield decode_file(e)
        return
    # Shallow on purpose: while the model embeds a batch (torch on every core) the decoders run
    # dry and pause. 64 in flight kept them decoding alongside it, and 1,500 files took 2-4 s
    # longer to read (33.9/33.5 s against 32.1/29.2 s); building the model in a thread while the
    # decoders start gained nothing measurable either (31.9/29.8 s).
    ahead = workers * 4
    i = 0
    while i < len(entries):
        ex = pools.start(workers)
        inflight: deque = deque()
        broken = False
        try:
            while i < len(entries) or inflight:
                while i < len(entries) and len(inflight) < ahead:
                    inflight.append((entries[i], ex.submit(decode_file, entries[i])))
                    i += 1
                entry, fut = inflight[0]
                try:
                    d = fut.result()
                except BrokenProcessPool:
                    broken = True
                    break
                inflight.popleft()
                yield d
                progress.check()
        finally:
            ex.shutdown(wait=not broken, cancel_futures=True)
        if broken:
            log.warning("a decode worker died; retrying %d files one by one", len(inflight))
            for entry, _ in inflight:
                progress.check()
                yield _decode_isolated(entry)
