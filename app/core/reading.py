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


def network_threads(workers: int) -> int:
    """CPU threads for the network while ``workers`` processes decode: the cores they leave, and
    at least one. More threads than cores would take turns with the decoders on the same cores,
    and torch's threads wait for each other by spinning: on 2 cores, two network threads beside
    two decoders spent twice the CPU time per photo of one thread."""
    return max(1, (os.cpu_count() or 1) - workers)


def _crashed(entry: FileEntry) -> Decoded:
    return Decoded(entry, problem="the image decoder crashed on this file (damaged or hostile data)")


def decode_all(entries: list[FileEntry], workers: int, progress: Progress, ahead: int = 0) -> Iterator[Decoded]:
    """Decode in worker processes, in order, overlapped with whatever consumes the iterator;
    ``ahead`` files in flight (at least 4 a worker).

    A worker that dies (a decoder segfault, the OOM killer) costs only the file that killed it,
    which becomes a problem entry; the scan goes on (pools.Pool.imap's crash isolation).
    """
    if len(entries) < INLINE_BELOW:
        workers = 0
    # The decoders keep decoding while the network embeds a batch (network_threads leaves them
    # their cores) as long as the files in flight cover more than that batch.
    with pools.Pool(workers, name="doppel-decode") as pool:
        yield from pool.imap(decode_file, entries, ahead=max(ahead, workers * 4), crashed=_crashed,
                             check=progress.check)
