"""Find the copies of one photo in a library: the photo (in the library or not) is read as a scan
reads it, its nearest neighbours come from Milvus's search, and each is verified against it as a
candidate pair of a scan is (docs/design.md). Nothing is written to the library.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from app.core import candidates, grouping, verification
from app.core.decode import decode_file
from app.core.domain import Row
from app.core.library import Library
from app.core.walk import FileEntry

QUERY = -(2 ** 63)  # the photo looked for; a row whose path hashes to it (odds 2**-64) is left out


@dataclass
class Copy:
    row: Row
    cosine: float
    score: float  # the verified pixel agreement (1.0 for the same bytes)
    how: str  # "identical", or how verification placed the two (verify.Match.how)


@dataclass
class FindResult:
    photo: str
    library: str
    model: str
    copies: list[Copy] = field(default_factory=list)
    candidates: int = 0  # neighbours verified
    problem: str = ""


def find_copies(photo: str, library: Library, embedder, similarity: float = 0.5,
                k: int = candidates.TOP_K) -> FindResult:
    """The copies of ``photo`` in ``library`` at the ``similarity`` setting, best first.

    The photo's vector is searched as it is and turned by each quarter: a turned copy's vector is
    far from its original's (a scan proposes those from content squares it keeps for every photo;
    for one photo, searching its four turns costs three more queries)."""
    path = os.path.abspath(photo)
    out = FindResult(path, library.location, embedder.name)
    try:
        st = os.stat(path)
    except OSError as exc:
        out.problem = f"cannot read: {exc.strerror or exc}"
        return out
    d = decode_file(FileEntry(path, st.st_size, st.st_mtime_ns))
    if d.problem:
        out.problem = d.problem
        return out
    turns = np.stack([np.rot90(d.model_input, q) for q in range(4)])
    floor = candidates.candidate_floor(embedder.name)
    cosine: dict[int, float] = {}
    for hits in library.neighbours(embedder.embed(turns), k + 1):  # +1: the photo itself, when stored
        for i, s in hits:
            if s >= floor and s > cosine.get(i, -1.0):
                cosine[i] = s
    rows = {r.id: r for r in library.get(list(cosine), with_signature=True) if r.path != path}
    rows.pop(QUERY, None)
    identical = {i for i, r in rows.items() if r.sha256 == d.sha256}
    _features(library, rows)
    evidence = {QUERY: (d.thumb, d.features), **{i: r.evidence() for i, r in rows.items()}}
    cands = {(min(QUERY, i), max(QUERY, i)): cosine[i] for i in rows if i not in identical}  # pairs as (smaller, larger)
    out.candidates = len(cands)
    outcomes = verification.verify_candidates(cands, evidence.get)
    floor_score = grouping.verify_threshold(similarity)
    for i in identical:
        out.copies.append(Copy(rows[i], cosine[i], 1.0, "identical"))
    for (a, b), (cos, match) in outcomes.items():
        i = b if a == QUERY else a
        if match.score >= floor_score:
            out.copies.append(Copy(rows[i], cos, match.score, match.how))
    out.copies.sort(key=lambda c: (-c.score, c.row.path))
    return out


def _features(library: Library, rows: dict[int, Row]) -> None:
    """The content features verification reads, from the library's catalog (a scan keeps them
    there, not in Milvus), for the rows as they were scanned."""
    from app.core.pairs import attach_signatures

    attach_signatures(library, rows, set(rows), library.catalog)


def to_dict(result: FindResult) -> dict:
    """The JSON report of ``doppel-cli find``."""
    return {"version": 1, "photo": result.photo, "library": result.library, "model": result.model,
            "problem": result.problem, "candidates": result.candidates,
            "copies": [{"path": c.row.path, "similarity": round(c.score, 4), "cosine": round(c.cosine, 4),
                        "how": c.how, "size": c.row.size, "width": c.row.width, "height": c.row.height,
                        "format": c.row.format, "sha256": c.row.sha256} for c in result.copies]}
