"""The one clock: simulated time for service rules, its protocol view in real seconds for SIP peers."""

from __future__ import annotations

from gateway.clock import ManualClock, ProtocolView, protocol_view


def scaled_manual(scale: float) -> ManualClock:
    clock = ManualClock()
    clock.scale = scale
    return clock


def test_scale_one_needs_no_view() -> None:
    clock = ManualClock()
    assert protocol_view(clock) is clock


def test_protocol_view_counts_real_seconds_on_the_same_timer_source() -> None:
    clock = scaled_manual(3600)  # an hour of simulated time per real second
    view = protocol_view(clock)
    assert isinstance(view, ProtocolView)
    fired: list[str] = []
    view.call_later(32.0, lambda: fired.append("timer F"))  # 32 real seconds
    clock.call_later(6 * 3600.0, lambda: fired.append("6 h cap"))  # 6 simulated hours = 6 real seconds
    clock.advance(6 * 3600.0)
    assert fired == ["6 h cap"] and view.now() == 6.0
    clock.advance(26 * 3600.0)
    assert fired == ["6 h cap", "timer F"] and view.now() == 32.0
    assert view.wall() == clock.wall()
