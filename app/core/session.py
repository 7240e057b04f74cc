"""Open the model and the library: what every front end does before a scan or a find.

The command line and the window's scan process call ``opened`` the same way; only how they tell
a person about notices and failures differs, so those are passed in.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from app.core.progress import Cancelled, Progress


class DownloadCancelled(Exception):
    """The scan was cancelled before it began, while the model's weights were downloading."""


@contextmanager
def opened(location: str, progress: Progress, user: str, notice: Callable[[str], None],
           weights: Optional[str] = None, allow_download: bool = True, prefer_fallback: bool = False,
           library_options: Optional[dict] = None) -> Iterator[tuple]:
    """(embedder, library), the library open until the block ends.

    Raises model.WeightsError (the weights cannot be used), library.LibraryError (the library
    cannot be opened or written) and DownloadCancelled (cancelled while the weights download).
    ``notice`` gets what a person should be told: the fallback model in use, a rebuilt library.
    """
    from app.core.library import Library
    from app.core.model import load_embedder

    try:
        embedder = load_embedder(weights or None, allow_download=allow_download, progress=progress,
                                 prefer_fallback=prefer_fallback)
    except Cancelled as exc:
        raise DownloadCancelled() from exc
    if embedder.choice.notice:
        notice(embedder.choice.notice)
    progress.note(f"Opening library {location}")
    with Library(location, embedder.name, embedder.dim, user=user, progress=progress,
                 **(library_options or {})) as library:
        for n in library.notices:
            notice(n)
        yield embedder, library
