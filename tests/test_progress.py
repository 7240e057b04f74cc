import pytest

from app.core.progress import Cancelled, Progress


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_updates_are_throttled_but_first_and_last_always_arrive():
    clock, seen = FakeClock(), []
    p = Progress(seen.append, max_rate=2, clock=clock)
    p.start(100, "embed")
    for i in range(100):
        clock.t += 0.01  # 100 files in one second
        p.advance(1, f"f{i}")
    assert seen[0].done == 0 and seen[-1].done == 100
    assert len(seen) <= 5
    assert seen[-1].rate == pytest.approx(100.0)
    assert seen[-1].current == "f99"


def test_eta_from_rate():
    clock, seen = FakeClock(), []
    p = Progress(seen.append, max_rate=0, clock=clock)
    p.start(10, "embed")
    clock.t = 2.0
    p.advance(4)
    assert seen[-1].eta == pytest.approx(3.0)


def test_cancel_raises_at_next_step_from_any_caller():
    p = Progress()
    p.start(3, "embed")
    p.advance()
    p.cancel()
    with pytest.raises(Cancelled):
        p.advance()
    with pytest.raises(Cancelled):
        p.check()


def test_the_timeline_holds_each_finished_stage_in_order():
    import time

    p = Progress()
    before = time.time()
    p.start(0, "walk")
    p.start(3, "embed")
    p.finish()
    (walk, w0, w1), (embed, e0, e1) = p.timeline
    assert (walk, embed) == ("walk", "embed")
    assert before <= w0 <= w1 <= e0 <= e1 <= time.time()
    assert set(p.took) == {"walk", "embed"}
