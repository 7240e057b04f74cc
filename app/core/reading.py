"""Reading: files decoded and fingerprinted in worker processes, in order, overlapped with the
model that embeds them (docs/design.md, steps 3-4). A worker that crashes on a file is replaced
and the file becomes a problem entry."""
from __future__ import annotations

import logging
import os
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


def decode_all(entries: list[FileEntry], workers: int, progress: Progress) -> Iterator[Decoded]:
    """Decode in worker processes, in order, overlapped with whatever consumes the iterator.

    A worker that dies (a decoder segfault, the OOM killer) costs only the file that killed it,
    which becomes a problem entry; the scan goes on (pools.Pool.imap's crash isolation).
    """
    if len(entries) < INLINE_BELOW:
        workers = 0
    # Shallow on purpose: while the model embeds a batch (torch on every core) the decoders run
    # dry and pause. 64 in flight kept them decoding alongside it, and 1,500 files took 2-4 s
    # longer to read (33.9/33.5 s against 32.1/29.2 s); building the model in a thread while the
    # decoders start gained nothing measurable either (31.9/29.8 s).
    with pools.Pool(workers) as pool:
        yield from pool.imap(decode_file, entries, ahead=workers * 4, crashed=_crashed, check=progress.check)
