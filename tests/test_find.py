"""'Find copies of this photo': Milvus search plus verification for one photo, in the library or not."""
import json
import os

from app.core import find, pipeline
from tests import imagegen as ig


def scanned(tmp_path, library, embedder):
    root = tmp_path / "photos"
    a = ig.photo(31, (900, 600))
    ig.save(a, root / "a.jpg")
    ig.save(ig.resized(a, 0.5), root / "a_half.jpg")
    ig.save(ig.grayscale(a), root / "a_gray.jpg")
    ig.save(ig.photo(32, (900, 600)), root / "b.jpg")
    ig.save(ig.photo(33, (900, 600)), root / "c.jpg")
    pipeline.scan([str(root)], library, embedder, workers=0)
    return root, a


def test_finds_the_copies_of_a_photo_outside_the_library_turned_and_resized(tmp_path, library, embedder):
    root, a = scanned(tmp_path, library, embedder)
    outside = tmp_path / "elsewhere" / "sent.jpg"
    ig.save(ig.resized(a, 0.4).rotate(90, expand=True), outside, quality=80)
    result = find.find_copies(str(outside), library, embedder)
    assert result.problem == ""
    assert sorted(os.path.basename(c.row.path) for c in result.copies) == ["a.jpg", "a_gray.jpg", "a_half.jpg"]
    assert result.candidates >= 3  # found by the search, then verified


def test_a_photo_in_the_library_is_not_its_own_copy_and_identical_bytes_are(tmp_path, library, embedder):
    root, _ = scanned(tmp_path, library, embedder)
    (root / "a again.jpg").write_bytes((root / "a.jpg").read_bytes())
    pipeline.scan([str(root)], library, embedder, workers=0)
    result = find.find_copies(str(root / "a.jpg"), library, embedder)
    found = {os.path.basename(c.row.path): c.how for c in result.copies}
    assert found.keys() == {"a again.jpg", "a_half.jpg", "a_gray.jpg"} and found["a again.jpg"] == "identical"


def test_doppel_cli_find_writes_a_json_report(tmp_path, library, embedder, capsys):
    from app import cli

    root, _ = scanned(tmp_path, library, embedder)
    location = library.location
    library.close()  # the command line opens it itself
    report = tmp_path / "find.json"
    assert cli.main(["find", str(root / "b.jpg"), "--library", location, "--fallback-model",
                     "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["photo"] == str(root / "b.jpg") and data["copies"] == [] and data["problem"] == ""
    assert "0 copies of" in capsys.readouterr().out
    assert cli.main(["find", str(root / "a_half.jpg"), "--library", location, "--fallback-model",
                     "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sorted(os.path.basename(c["path"]) for c in data["copies"]) == ["a.jpg", "a_gray.jpg"]
    assert all(c["similarity"] > 0.5 and c["width"] > 0 for c in data["copies"])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert cli.main(["find", str(broken), "--library", location, "--fallback-model"]) == 1
    assert "broken.jpg" in capsys.readouterr().err
