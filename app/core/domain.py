"""The domain's records, shared by every stage: a file read (Row), a duplicate group (Group,
whose keeper is one of its members), a verified pair (Pair) and a file Doppel could not handle
(Problem)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:  # the check itself (cv2) is not needed to hold its outcome
    from app.core import verify


@dataclass(frozen=True)
class Problem:
    """A file (or folder) a stage could not handle, and why, in words for people."""
    path: str
    error: str


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
    # content.pack()ed local features: kept in the catalog, not in Milvus (34 kB a photo that
    # Milvus Lite would hold in memory, and only verification reads them)
    features: Optional[bytes] = None
    # The content's share of the photo's area (content.py: a border, bars or a mat take the rest);
    # known after the scan's search stage, from the features or the catalog. Not in Milvus.
    content_share: float = 1.0
    # originals.photo_facts (colour, camera, date, RAW): what the keeper is chosen on; kept in the
    # catalog, not in Milvus. None: not known (the keeper then goes by the rest).
    facts: Optional[dict] = None

    def evidence(self):
        """What verification reads: (signature, features), or None before they are attached."""
        return None if self.signature is None else (self.signature, self.features)


@dataclass
class Member:
    row: Row
    similarity: float = 1.0  # to the keeper, filled by ranking
    keep: bool = False
    reason: str = ""  # why it is the keeper, or what it is (ranking.describe)
    kind: str = ""  # against the keeper: "keeper", ranking.SAFE_KINDS, "RAW", "RAW + JPEG", "edited"
    changes: list = field(default_factory=list)  # an edited copy's edits, in words
    safe: bool = False  # preselected for the trash by its kind (a large group waits for a look)


@dataclass
class Group:
    kind: str  # exact | near | edited
    members: list[Member]
    pair_scores: dict = field(default_factory=dict)  # (id, id) -> verified score between members
    # (a, b) -> verify.Match of the verified pairs among the group's representatives (one file of
    # each set of byte-identical ones): what the keeper and the kinds of copies are read from
    matches: dict = field(default_factory=dict)
    # set by ranking: the suggested keeper, each member's edits against the group (id -> labels),
    # and whether the group waits for a person to look before anything in it is preselected
    keeper: Optional[Member] = None
    edits: dict = field(default_factory=dict)
    needs_look: bool = False

    @property
    def ids(self) -> list[int]:
        return [m.row.id for m in self.members]


@dataclass
class Pair:
    a: int
    b: int
    cosine: float
    match: verify.Match
