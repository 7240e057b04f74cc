"""Suggest which copy of each group to keep.

Default rule: a copy without an added frame (border, bars, print mat) before a framed one, then
the most pixels of content, then the larger file, then the older file, then the shorter path.
Other rules put their own criterion first and fall back on this order. Files in reference folders
are always kept; they are never suggested for the trash.
"""
from __future__ import annotations

from typing import Iterable

from app.core.grouping import Group, Member
from app.core.walk import inside


# A copy whose content fills less than this share of it carries an added frame (a border, bars, a
# print mat: content.py); the photo without one is the original. Above it: a line or two the frame
# detection may take from a photo's own flat edge.
FRAMED_BELOW = 0.98


def _default_key(m: Member):
    r = m.row
    framed = r.content_share < FRAMED_BELOW
    return (framed, -(r.width * r.height * r.content_share), -r.size, r.mtime_ns, len(r.path), r.path)


def keeper_key(rule: str, preferred_folder: str = ""):
    if rule == "largest-file":
        return lambda m: (-m.row.size,) + _default_key(m)
    if rule == "oldest":
        return lambda m: (m.row.mtime_ns,) + _default_key(m)
    if rule == "newest":
        return lambda m: (-m.row.mtime_ns,) + _default_key(m)
    if rule == "preferred-folder" and preferred_folder:
        return lambda m: (0 if inside(m.row.path, [preferred_folder]) else 1,) + _default_key(m)
    return _default_key


def rank_group(group: Group, rule: str = "resolution", reference_folders: Iterable[str] = (),
               preferred_folder: str = "") -> None:
    reference_folders = list(reference_folders)
    group.members.sort(key=keeper_key(rule, preferred_folder))
    keeper = group.members[0]
    for m in group.members:
        m.keep = m is keeper or inside(m.row.path, reference_folders)
        m.reason = "suggested keeper" if m is keeper else ("reference folder" if m.keep else "")
        a, b = keeper.row.id, m.row.id
        m.similarity = 1.0 if m is keeper else group.pair_scores.get((a, b), group.pair_scores.get((b, a), 0.0))


def rank_groups(groups: list[Group], rule: str = "resolution", reference_folders: Iterable[str] = (),
                preferred_folder: str = "") -> None:
    for g in groups:
        rank_group(g, rule, reference_folders, preferred_folder)
