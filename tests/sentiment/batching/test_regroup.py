"""The regroup policy: when the next call waits for the requests the last one answered (values, no clock)."""

from __future__ import annotations

import pytest

from sentiment.batching.regroup import AT_ONCE, BOUND, FULL, GAP, REGROUPED, Regroup

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def test_a_lone_client_is_never_held() -> None:
    policy = Regroup(max_wait=2.0)
    policy.call_returned(answered=1, waiting=0, duration_s=0.010, now=100.0)
    policy.activity(100.001)  # its next request
    assert policy.wait_s(waiting=1, items=1, max_items=64, now=100.001) == 0
    assert policy.departure(waiting=1, items=1, max_items=64, now=100.001, waited=False) == AT_ONCE


def test_the_cohort_just_answered_is_waited_for_while_it_comes_back() -> None:
    policy = Regroup(max_wait=2.0)
    # 16 answered while 16 others waited: the next call waits for the 16 to come back
    policy.call_returned(answered=16, waiting=16, duration_s=0.050, now=100.0)
    assert policy.wait_s(waiting=16, items=16, max_items=64, now=100.0) == pytest.approx(0.005)  # a tenth of the call
    for i in range(1, 16):  # one arrival every 2 ms keeps the wait going
        policy.activity(100.0 + 0.002 * i)
        assert policy.wait_s(waiting=16 + i, items=16 + i, max_items=64, now=100.0 + 0.002 * i) > 0
    policy.activity(100.032)
    assert policy.wait_s(waiting=32, items=32, max_items=64, now=100.032) == 0
    assert policy.departure(waiting=32, items=32, max_items=64, now=100.032, waited=True) == REGROUPED


def test_the_wait_ends_when_arrivals_stop() -> None:
    policy = Regroup(max_wait=2.0)
    policy.call_returned(answered=32, waiting=0, duration_s=0.100, now=100.0)
    policy.activity(100.003)
    assert policy.wait_s(waiting=30, items=30, max_items=64, now=100.004) == pytest.approx(0.009)
    assert policy.wait_s(waiting=30, items=30, max_items=64, now=100.013) == 0  # 10 ms without an arrival
    assert policy.departure(waiting=30, items=30, max_items=64, now=100.013, waited=True) == GAP


def test_the_wait_never_outlasts_its_bound() -> None:
    policy = Regroup(max_wait=2.0)
    policy.call_returned(answered=32, waiting=0, duration_s=0.100, now=100.0)
    policy.activity(100.199)  # arrivals never stop, the expected count is never reached
    assert policy.wait_s(waiting=20, items=20, max_items=64, now=100.199) == pytest.approx(0.001)
    assert policy.wait_s(waiting=20, items=20, max_items=64, now=100.2) == 0  # twice the last call's time
    assert policy.departure(waiting=20, items=20, max_items=64, now=100.2, waited=True) == BOUND


def test_a_full_batch_leaves_at_once() -> None:
    policy = Regroup(max_wait=2.0)
    policy.call_returned(answered=16, waiting=8, duration_s=0.100, now=100.0)
    assert policy.wait_s(waiting=8, items=64, max_items=64, now=100.0) == 0
    assert policy.departure(waiting=8, items=64, max_items=64, now=100.0, waited=False) == FULL


def test_zero_never_waits_and_an_old_call_says_nothing() -> None:
    never = Regroup(max_wait=0.0)
    never.call_returned(answered=32, waiting=0, duration_s=0.100, now=100.0)
    assert never.wait_s(waiting=1, items=1, max_items=64, now=100.0) == 0
    policy = Regroup(max_wait=2.0)
    policy.call_returned(answered=32, waiting=0, duration_s=0.100, now=100.0)
    assert policy.wait_s(waiting=1, items=1, max_items=64, now=101.0) == 0  # a second later: nobody is coming back
