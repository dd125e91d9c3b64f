"""The chaos suite's flap-damping rule (haipvs.lab.chaos.damping_lapses), in literal time:
what the daemon's log may show for a flapping real server under the suite's settings
(1000 per change, half-life 4 s, suppressed over 2000, released at 750)."""

from __future__ import annotations

from checkers.spec import DampingSettings
from haipvs.lab.chaos import DAMPING, damping_lapses

SETTINGS = DampingSettings(**DAMPING)


def test_changes_a_second_apart_are_suppressed_at_the_third() -> None:
    # 1000, then 1000 * 2**-0.25 + 1000 = 1841, then 1841 * 0.84 + 1000 = 2548: the third
    # change (a fall) starts suppression; its check.down and check.damped share the time.
    changes = [(10.0, "fall"), (11.0, "rise"), (12.0, "fall")]
    assert damping_lapses(changes, 12.004, SETTINGS) == []


def test_changes_3_8_s_apart_take_five_before_suppression() -> None:
    # Spaced by a busy guest, the penalty decays between changes (x 0.518 over 3.8 s):
    # 1000, 1518, 1786, 1924, 1996; the sixth verdict (a rise, logged as check.damped
    # only) passes 2000. Five changes, as a CI run saw, are within the rule.
    changes = [(0.0, "fall"), (3.8, "rise"), (7.6, "fall"), (11.4, "rise"), (15.2, "fall")]
    assert damping_lapses(changes, 19.0, SETTINGS) == []
    # Suppressed at the fifth, though, is too early: its penalty was 1996.
    assert damping_lapses(changes[:4], 15.2, SETTINGS) == [
        "suppression began with the penalty at 1996, not over 2000"]


def test_a_change_let_through_after_the_threshold_is_a_lapse() -> None:
    changes = [(10.0, "fall"), (11.0, "rise"), (12.0, "fall"), (13.0, "rise")]
    lapses = damping_lapses(changes, 13.5, SETTINGS)
    assert lapses[0] == ("a change 1.50 s before suppression began took the penalty over"
                         " 2000")


def test_after_suppression_only_the_release_changes_the_verdict() -> None:
    changes = [(10.0, "fall"), (11.0, "rise"), (12.0, "fall"), (14.0, "rise"),
               (25.0, "damping_released")]
    assert damping_lapses(changes, 12.0, SETTINGS) == [
        "a change (rise) 2.00 s after suppression began"]
