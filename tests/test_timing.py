"""The profiling regions: free when off, exclusive times when on."""

import time

from advunlearn.core.timing import _NULL, phase, phase_timer


def test_phase_is_a_shared_no_op_without_a_timer():
    assert phase("x") is _NULL
    with phase("x"):
        pass


def test_nested_phases_are_counted_exclusively():
    with phase_timer() as t:
        with phase("outer"):
            time.sleep(0.02)
            with phase("inner"):
                time.sleep(0.03)
    assert phase("x") is _NULL  # the timer is off again
    assert t.calls == {"outer": 1, "inner": 1}
    assert 0.03 <= t.seconds["inner"] < 0.2
    assert 0.02 <= t.seconds["outer"] < t.seconds["inner"] + 0.1
    assert abs(t.total() - (t.seconds["outer"] + t.seconds["inner"])) < 1e-12
