"""Feature matching gives exactly the matches of OpenCV's brute-force matcher with the ratio test."""
import cv2
import numpy as np

from app.core import content, verify
from app.core.decode import evidence
from tests import imagegen as ig


def opencv_matches(da, db):
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < verify.RATIO * m[1].distance]
    return [m.queryIdx for m in good], [m.trainIdx for m in good]


def test_the_same_matches_as_opencv_on_descriptors_of_every_kind():
    rng = np.random.default_rng(7)
    cases = []
    for n_a, n_b, high in [(256, 256, 256), (200, 31, 256), (40, 2, 256), (5, 1, 256), (0, 9, 256), (120, 140, 4)]:
        da = rng.integers(0, high, (n_a, 128)).astype(np.float32)
        db = rng.integers(0, high, (n_b, 128)).astype(np.float32)
        cases.append((da, db))
    # near copies (clear best matches), repeated rows (ties) and descriptors at SIFT's largest values
    base = rng.integers(0, 256, (150, 128)).astype(np.float32)
    noisy = np.clip(base + rng.integers(-3, 4, base.shape), 0, 255).astype(np.float32)
    cases += [(base, noisy[::-1].copy()), (base, np.concatenate([base[:50], base[:50], noisy[50:]])),
              (np.full((10, 128), 255, np.float32), np.concatenate([np.full((3, 128), 255, np.float32), base]))]
    # real SIFT descriptors of a photo and of its brightened, resized copy, and of the mirror view
    a = content.unpack(evidence(ig.photo(11, (640, 480)))[1])
    b = content.unpack(evidence(ig.brightened(ig.resized(ig.photo(11, (640, 480)), 0.6), 1.2))[1])
    cases += [(a.descriptors, b.descriptors), (a.descriptors, np.ascontiguousarray(b.descriptors[:, verify.MIRROR]))]
    for da, db in cases:
        qi, ti = verify.ratio_matches(da, db)
        assert (qi.tolist(), ti.tolist()) == opencv_matches(da, db), (da.shape, db.shape)
    assert len(verify.ratio_matches(a.descriptors, b.descriptors)[0]) >= verify.MIN_INLIERS  # a copy matches
