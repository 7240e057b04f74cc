"""A messy library: every hostile case gets a clear problem entry or correct processing."""
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core import report
from app.core.pipeline import scan
from app.core.progress import Progress
from app.core.trash import GroupDecision, Journal, ScannedFile, trash_files
from tests import imagegen as ig


def png_bomb(path: Path, w=50_000, h=50_000):
    """A valid PNG header that claims w x h pixels, with almost no data behind it."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    a = ig.photo(61, (640, 480))
    ig.save(a, root / "original.jpg")
    data = (root / "original.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "zero.jpg").write_bytes(b"")
    (root / "random.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (root / "text.png").write_text("hello, I am not a PNG")
    png_bomb(root / "bomb.png")
    big = Image.new("L", (10_500, 10_000), 128)  # 105 MP, legitimately huge
    big.paste(ig.photo(62, (2000, 1500)).convert("L").resize((10_500, 10_000)))
    big.save(root / "huge_105mp.jpg", quality=70)
    del big
    a.convert("CMYK").save(root / "cmyk.jpg", quality=92)
    gray16 = (np.asarray(a.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(gray16).save(root / "gray16.png")  # 16-bit, same picture as original
    pal = a.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    pal.info["transparency"] = 0
    pal.save(root / "palette_transparent.png", transparency=0)
    frames = [ig.photo(63, (320, 240)), ig.photo(64, (320, 240))]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(root / "multipage.tif", save_all=True, append_images=frames[1:])
    os.symlink(root / "does-not-exist.jpg", root / "broken_link.jpg")
    (root / "loop").mkdir()
    os.symlink(root, root / "loop" / "back_to_root")
    (root / "folder.jpg").mkdir()
    ig.save(ig.photo(65, (320, 240)), root / "folder.jpg" / "inside.jpg")
    bad_name = os.fsdecode(b"caf\xe9_latin1.jpg")  # not valid UTF-8
    (root / bad_name).write_bytes(data)  # an exact copy of original.jpg
    unreadable = root / "unreadable.jpg"
    unreadable.write_bytes(data)
    unreadable.chmod(0)
    ig.save(ig.photo(66, (320, 240)), root / "vanishing.jpg")
    return root


@pytest.fixture(scope="module")
def result(hostile, embedder, tmp_path_factory):
    from app.core.library import Library

    def listener(u):  # a file deleted while the scan runs
        if u.stage == "embed" and u.done == 0:
            (hostile / "vanishing.jpg").unlink(missing_ok=True)

    with Library(str(tmp_path_factory.mktemp("lib") / "l.db"), embedder.name, embedder.dim) as lib:
        res = scan([str(hostile)], lib, embedder, Progress(listener, max_rate=0), workers=0)
    return res


def problems(result):
    return {os.path.basename(p.path): p.error for p in result.problems}


def rows(result):
    return {os.path.basename(r.path): r for r in result.rows}


def test_bad_files_are_problems_with_clear_reasons(result):
    p = problems(result)
    assert "truncated" in p["truncated.jpg"]
    assert "empty file" in p["zero.jpg"]
    assert "not an image" in p["random.jpg"]
    assert "not an image" in p["text.png"]
    assert "too large" in p["bomb.png"] and "2,500,000,000 pixels" in p["bomb.png"]
    assert "broken symbolic link" in p["broken_link.jpg"]
    assert "vanished" in p["vanishing.jpg"]


def test_unreadable_file_is_a_problem(result, tmp_path):
    if os.geteuid() != 0:
        assert "permission denied" in problems(result)["unreadable.jpg"]
        return
    # Root reads anything: decode in a subprocess that gave up the capabilities that bypass
    # file permissions (still root, so it can run this venv).
    import shutil
    import subprocess
    import sys
    import tempfile

    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv to drop privileges")
    d = Path(tempfile.mkdtemp(prefix="doppel-perm-"))
    try:
        f = d / "secret.jpg"
        ig.save(ig.photo(67, (64, 48)), f)
        f.chmod(0)
        code = ("import sys; from app.core.decode import decode_file; from app.core.walk import FileEntry; "
                f"print(decode_file(FileEntry({str(f)!r}, 1, 1)).problem)")
        out = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c", code],
                             cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "permission denied" in out.stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_odd_but_valid_images_are_processed(result):
    r = rows(result)
    assert (r["huge_105mp.jpg"].width, r["huge_105mp.jpg"].height) == (10_500, 10_000)
    for name in ("cmyk.jpg", "gray16.png", "palette_transparent.png", "animated.gif", "multipage.tif", "inside.jpg"):
        assert name in r, problems(result).get(name)
        assert r[name].signature.std() > 5, name  # real content, not a flat or clipped image
    assert r["animated.gif"].format == "GIF" and r["multipage.tif"].format == "TIFF"


def test_odd_formats_still_match_their_original(result):
    groups = [sorted(os.path.basename(m.row.path) for m in g.members) for g in result.groups]
    orig_group = next(g for g in groups if "original.jpg" in g)
    # 16-bit grayscale and CMYK versions are the same photo; the non-UTF-8 name is a byte copy.
    assert {"cmyk.jpg", "gray16.png", "palette_transparent.png"} <= set(orig_group)
    assert any(n.startswith("caf") for n in orig_group)


def test_non_utf8_name_survives_library_and_report(result, hostile):
    name = os.fsdecode(b"caf\xe9_latin1.jpg")
    assert str(hostile / name) in {r.path for r in result.rows}
    data = json.dumps(report.to_dict(result))  # must be valid JSON text
    assert "caf\\ufffd_latin1.jpg" in data


def test_symlink_loop_and_directory_named_like_an_image(result):
    assert result.stats.files == len({r.path for r in result.rows}) + len(
        [p for p in result.problems if "broken symbolic link" not in p.error])


def test_file_replaced_between_scan_and_trash_is_skipped(result, hostile, tmp_path):
    g = next(g for g in result.groups if any(m.row.path.endswith("original.jpg") for m in g.members))
    members = [ScannedFile(m.row.path, m.row.size, m.row.mtime_ns, m.row.sha256) for m in g.members]
    victim = next(m for m in members if m.path.endswith("gray16.png"))
    ig.save(ig.photo(99, (640, 480)), Path(victim.path))  # replaced by another photo
    out = trash_files([GroupDecision(members, {victim.path})], Journal(tmp_path / "j.jsonl"))
    assert out.trashed == [] and Path(victim.path).exists()
    assert "changed since it was scanned" in out.problems[0].error
