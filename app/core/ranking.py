"""Suggest which copy of each group to keep, and which copies are safe to preselect for the trash.

The keeper is the unedited original. Members are ordered on, in turn:

1. Original content: not a crop or zoom of another member, no added border or frame, no
   watermark or overlay, colour rather than grayscale, not mirrored, not turned against the
   orientation the group shares, the tone and colours most copies share (originals.edits;
   frames from content.py; overlays read from the files, only between copies tied so far).
2. Camera provenance: a camera RAW, then a camera's own file (EXIF camera and date, a camera
   format), then a camera format without them, then conversions (PNG, WebP, ...).
3. The most pixels of content.
4. In the preferred folder, when one is set.
5. Stored upright rather than turned by an EXIF orientation flag.
6. The larger file, only as the last tie-break; then the older file and the shorter path.

The other rules (highest resolution, largest file, oldest, newest, preferred folder) put their own
criterion first and fall back on this order. Files in reference folders are always kept.

A copy is preselected for the trash only when it is the same picture at no loss against the
keeper: byte-identical, a smaller or re-encoded version, or a format conversion. Edited copies
(crops, turns, mirrors, grayscale, frames, tone or colour edits) are labelled and kept unless the
user asks for them too; a RAW is never preselected beside a file that is not the same bytes, and
a JPEG beside its RAW only when the user asks for it. A group of more than LARGE_GROUP copies
preselects nothing until a person has looked at it (the window does that when it is shown).
"""
from __future__ import annotations

from dataclasses import dataclass

from app.core import originals, verify
from app.core.domain import Group, Member
from app.core.grouping import representatives
from app.core.walk import inside

# A copy whose content fills less than this share of it carries an added frame (a border, bars, a
# print mat: content.py); the photo without one is the original. Above it: a line or two the frame
# detection may take from a photo's own flat edge.
FRAMED_BELOW = 0.98
# More copies than this in one group is more than a person checks at a glance: nothing of it is
# preselected until the group has been looked at.
LARGE_GROUP = 36

SAFE_KINDS = ("identical", "smaller copy", "re-encoded", "converted")


@dataclass
class Options:
    rule: str = "resolution"
    reference_folders: tuple = ()
    preferred_folder: str = ""
    select_edited: bool = False  # preselect edited copies too
    trash_jpeg_with_raw: bool = False  # preselect the JPEG of a RAW + JPEG pair


def _framed(m: Member) -> bool:
    return m.row.content_share < FRAMED_BELOW


def _originality(m: Member, edits: dict[int, list[str]]) -> tuple:
    e = set(edits.get(m.row.id, ()))
    return ("crop" in e, _framed(m), "overlay" in e, "grayscale" in e, "mirrored" in e, "turned" in e,
            "tone" in e or "colour" in e)


def _pixels(m: Member) -> float:
    r = m.row
    return r.width * r.height * r.content_share


def default_key(m: Member, edits: dict[int, list[str]], preferred_folder: str = ""):
    r = m.row
    preferred = 0 if preferred_folder and inside(r.path, [preferred_folder]) else 1
    # a file stored upright before one that needs its EXIF orientation flag to show so: every
    # program shows the first one right
    flagged = bool((r.facts or {}).get("flagged"))
    return (_originality(m, edits), originals.provenance(r.facts, r.format), -_pixels(m), preferred, flagged,
            -r.size, r.mtime_ns, len(r.path), r.path)


def keeper_key(rule: str, edits: dict[int, list[str]], preferred_folder: str = ""):
    def base(m):
        return default_key(m, edits, preferred_folder)
    if rule == "largest-file":
        return lambda m: (-m.row.size,) + base(m)
    if rule == "oldest":
        return lambda m: (m.row.mtime_ns,) + base(m)
    if rule == "newest":
        return lambda m: (-m.row.mtime_ns,) + base(m)
    if rule == "preferred-folder" and preferred_folder:
        return lambda m: (0 if inside(m.row.path, [preferred_folder]) else 1,) + base(m)
    if rule == "highest-resolution":
        return lambda m: (-_pixels(m),) + base(m)
    return base


def _representatives(group: Group) -> dict[int, int]:
    """member id -> the id standing for its byte-identical set in ``group.matches``."""
    _, by_sha = representatives([m.row for m in group.members])
    return {m.row.id: by_sha[m.row.sha256][0].id for m in group.members}


def _match(group: Group, rep: dict[int, int], a: int, b: int):
    """The verified match between members a and b, as seen from a (dihedral(b, t) lines b up
    with a), or None."""
    x, y = rep[a], rep[b]
    m = group.matches.get((x, y))
    if m is not None:
        return m
    m = group.matches.get((y, x))
    return None if m is None else verify.swapped(m)


def kind_of(m: Member, keeper: Member, group: Group, rep: dict[int, int], edits: dict[int, list[str]]) -> tuple[str, list[str]]:
    """(kind, what was changed) of copy ``m`` against ``keeper``: a SAFE_KINDS kind, "RAW",
    "RAW + JPEG", or "edited" with the edits named."""
    r, k = m.row, keeper.row
    if r.sha256 == k.sha256:
        return "identical", []
    if (r.facts or {}).get("raw"):
        return "RAW", []
    if (k.facts or {}).get("raw"):
        return "RAW + JPEG", []
    changed = [originals.EDIT_LABELS[e] for e in edits.get(r.id, ())]
    if _framed(m) and not _framed(keeper):
        changed.append(originals.EDIT_LABELS["framed"])
    match = _match(group, rep, k.id, r.id)
    if match is None:
        changed.append("not compared with the keeper directly")
    else:
        if match.how != "frame" and "crop or zoom" not in changed:
            changed.append("crop or zoom" if match.outer == "a" else "shows more than the keeper")
        if match.transform and not {"mirrored", "turned"} & set(changed):
            changed.append("mirrored" if match.transform >= 4 else "turned")
    fr, fk = r.facts or {}, k.facts or {}
    if fr.get("tone") and fk.get("tone") and (change := originals.tone_change(fr["tone"], fk["tone"])):
        changed.append(change)
    gray_r = originals.is_gray(r.facts)
    if "chroma" in fr and "chroma" in fk and not gray_r and not originals.is_gray(k.facts) \
            and originals.colour_changed(fr["chroma"], fk["chroma"]):
        changed.append("colour changed")
    if gray_r and originals.is_gray(k.facts) is False and "grayscale copy" not in changed:
        changed.append("grayscale copy")
    if changed:
        return "edited", changed
    if r.width * r.height > k.width * k.height:
        return "edited", ["more pixels than the keeper"]
    if r.width * r.height < k.width * k.height:
        return "smaller copy", []
    return ("re-encoded" if (r.format or "").upper() == (k.format or "").upper() else "converted"), []


def keeper_reason(keeper: Member, runner_up: Member | None, edits: dict[int, list[str]], options: Options) -> str:
    """Why ``keeper`` comes first: the first criterion of the order on which it beats the next."""
    if runner_up is None:
        return "suggested keeper"
    k, r = keeper.row, runner_up.row
    key = keeper_key(options.rule, edits, options.preferred_folder)
    if options.rule != "original" and key(keeper)[0] != key(runner_up)[0]:
        return {"largest-file": "the largest file", "oldest": "the oldest file", "newest": "the newest file",
                "preferred-folder": "in the preferred folder",
                "highest-resolution": "the most pixels"}.get(options.rule, "your rule")
    ok, orr = _originality(keeper, edits), _originality(runner_up, edits)
    if ok != orr:
        names = ("not a crop or zoom", "no added frame", "no watermark or overlay", "in colour", "not mirrored",
                 "upright", "the tone and colours most copies share")
        return "the original: " + next(n for n, a, b in zip(names, ok, orr) if a != b)
    pk, pr = originals.provenance(k.facts, k.format), originals.provenance(r.facts, r.format)
    if pk != pr:
        if pk == 0:
            return "the camera's RAW"
        if pk == 1:
            f = k.facts or {}
            return f"the camera's file ({f.get('camera', '')}, {f.get('taken', '')[:10].replace(':', '-')})"
        return f"the camera's format ({k.format}), not a conversion"
    if _pixels(keeper) != _pixels(runner_up):
        return "the most pixels"
    if options.preferred_folder and inside(k.path, [options.preferred_folder]) != inside(r.path, [options.preferred_folder]):
        return "in the preferred folder"
    if bool((k.facts or {}).get("flagged")) != bool((r.facts or {}).get("flagged")):
        return "stored upright (no orientation flag needed)"
    if k.size != r.size:
        return "the larger file"
    return "the older file" if k.mtime_ns != r.mtime_ns else "first by path"


def _upright_frame(group: Group, rep: dict[int, int], a: Member, b: Member) -> bool:
    m = _match(group, rep, a.row.id, b.row.id)
    return m is not None and m.how == "frame" and m.transform == 0


def _demote_overlays(group: Group, rep: dict[int, int], edits: dict[int, list[str]], key, preferred_folder: str) -> None:
    """The first member against the copies it ties with on everything but the file size (an
    overlay adds bytes): one that carries a watermark or overlay the other lacks is labelled and
    the order made again. Files are read for this (originals.overlay_side), only for such ties."""
    for _ in range(len(group.members)):
        top = group.members[0]
        tie = default_key(top, edits, preferred_folder)[:3]
        for m in group.members[1:]:
            if m.row.sha256 == top.row.sha256 or default_key(m, edits, preferred_folder)[:3] != tie:
                continue
            if _upright_frame(group, rep, top, m) and originals.overlay_side(top.row, m.row) == "a":
                for i, r in rep.items():
                    if r == rep[top.row.id]:
                        edits[i] = edits.get(i, []) + ["overlay"]
                group.members.sort(key=key)
                break
        else:
            return


def rank_group(group: Group, options: Options | None = None) -> None:
    options = options or Options()
    rep = _representatives(group)
    reps = sorted(set(rep.values()))
    facts = {m.row.id: m.row.facts for m in group.members if m.row.id in rep.values()}
    fmt = {m.row.id: m.row.format for m in group.members}
    rep_edits = originals.edits(reps, group.matches, facts, fmt)
    edits = {m.row.id: rep_edits.get(rep[m.row.id], []) for m in group.members}
    group.edits = edits
    key = keeper_key(options.rule, edits, options.preferred_folder)
    group.members.sort(key=key)
    _demote_overlays(group, rep, edits, key, options.preferred_folder)
    keeper = group.members[0]
    group.keeper = keeper
    runner_up = next((m for m in group.members[1:] if m.row.sha256 != keeper.row.sha256), None)
    refs = list(options.reference_folders)
    large = len(group.members) > LARGE_GROUP
    group.needs_look = large
    for m in group.members:
        a, b = keeper.row.id, m.row.id
        m.similarity = 1.0 if m is keeper else group.pair_scores.get((a, b), group.pair_scores.get((b, a), 0.0))
        if m is keeper:
            m.kind, m.changes, m.safe, m.keep = "keeper", [], False, True
            m.reason = keeper_reason(keeper, runner_up, edits, options)
            continue
        m.kind, m.changes = kind_of(m, keeper, group, rep, edits)
        if m.kind in SAFE_KINDS and m.kind != "identical" and _upright_frame(group, rep, keeper, m) \
                and originals.overlay_side(keeper.row, m.row) == "b":
            m.kind, m.changes = "edited", [originals.EDIT_LABELS["overlay"]]
        if m.kind in SAFE_KINDS:
            m.safe = True
        elif m.kind == "RAW + JPEG":
            m.safe = options.trash_jpeg_with_raw
        elif m.kind == "edited":
            m.safe = options.select_edited
        else:  # a RAW beside a file that is not the same bytes
            m.safe = False
        if inside(m.row.path, refs):
            m.safe = False
            m.reason = "reference folder"
        else:
            m.reason = describe(m)
        m.keep = not m.safe or large


def describe(m: Member) -> str:
    """What a copy is, in a few words (its card's badge, the report)."""
    if m.kind == "edited":
        return "edited: " + ", ".join(m.changes)
    if m.kind == "RAW + JPEG":
        return "JPEG of the RAW keeper"
    if m.kind == "RAW":
        return "RAW: never preselected"
    return m.kind


def rank_groups(groups: list[Group], options: Options | None = None, progress=None) -> None:
    """Rank every group; ``progress`` (a Progress) counts the groups (reading overlays takes time)."""
    if progress is not None:
        progress.start(len(groups), "keeper", "Choosing the copy to keep in each group")
    for g in groups:
        rank_group(g, options)
        if progress is not None:
            progress.advance(1, g.members[0].row.path)


def look_at(group: Group) -> None:
    """A person has seen ``group``: a large group's safe copies are preselected now."""
    if getattr(group, "needs_look", False):
        group.needs_look = False
        for m in group.members:
            if m is not group.keeper:
                m.keep = not m.safe
