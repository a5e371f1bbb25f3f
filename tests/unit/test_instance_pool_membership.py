"""InstancePool membership updates: the same source object is not reconciled, instances that stay
keep their state, a removed instance closes its channel after its running calls, a returning one
starts afresh, a pick racing a removal skips it, no instances pick nothing, close retires
everything, and channels are made for every instance on request.
"""

from __future__ import annotations

import pytest
from instance_pool_fakes import A, B, C, call, fail, make_pool, pick, running

from telemetry.discovery.instance_pool import Verdict

# -- membership ------------------------------------------------------------------------------------


def test_the_same_source_object_is_not_reconciled() -> None:
    pool, source, _, _ = make_pool()
    first = pool.view()
    assert pool.view() is first
    source.current = tuple(source.current)  # an equal tuple, yet the same object: no change
    assert pool.view() is first
    source.current = (A, B, C)  # a new object with the same members: a new view, same endpoints
    second = pool.view()
    assert second is not first
    assert all(second.endpoints[a] is e for a, e in first.endpoints.items())


def test_membership_update_keeps_the_state_of_instances_that_stay() -> None:
    pool, source, _, made = make_pool()
    for _ in range(3):  # a channel for each
        call(pool)
    fail(pool, A)
    breaker = pool.breakers()[A.address]
    source.current = (A, C)
    view = pool.view()
    assert pool.breakers()[A.address] is breaker
    assert pool.ejected() == [A.address]  # still ejected: the update did not readmit it
    kept = {c.address: c for c in made}
    assert view.endpoints[C.address].channel is kept[C.address]
    assert not kept[C.address].closed and not kept[A.address].closed
    assert kept[B.address].closed  # idle: closed at once
    assert {call(pool).id for _ in range(10)} == {"c"}


def test_a_removed_instance_closes_its_channel_after_its_running_calls() -> None:
    pool, source, _, made = make_pool([A, B])
    picks = [pick(pool) for _ in range(4)]
    running_on_a = [p for p in picks if p[0] == A]
    assert len(running_on_a) == 2
    for picked in picks:
        if picked[0] == B:
            pool.report(*picked, Verdict.SUCCESS, 0.01)
    source.current = (B,)
    pool.view()
    channel_a = next(c for c in made if c.address == A.address)
    assert not channel_a.closed  # draining: two calls still on it
    pool.report(*running_on_a[0], Verdict.SUCCESS, 0.01)
    assert not channel_a.closed
    pool.report(*running_on_a[1], Verdict.FAILURE, 0.01)
    assert channel_a.closed
    assert running(pool) == 0


def test_an_instance_that_returns_starts_afresh() -> None:
    pool, source, _, made = make_pool([A, B])
    fail(pool, A)
    source.current = (B,)
    pool.view()
    source.current = (A, B)
    pool.view()
    assert pool.ejected() == []  # a new breaker: the old verdict left with the instance
    assert "a" in {call(pool).id for _ in range(4)}
    assert [c.address for c in made].count(A.address) == 2  # and a new channel
    assert [c.closed for c in made if c.address == A.address] == [True, False]


def test_a_pick_racing_a_removal_hands_back_and_skips_it() -> None:
    pool, source, _, _ = make_pool([A, B])
    stale = pool.view()
    source.current = (B,)
    pool.view()  # A retired; the stale view still lists it
    for _ in range(6):
        picked = pool.pick(stale, None)
        assert picked is not None and picked[0] == B
        pool.report(*picked, Verdict.SUCCESS, 0.0)
    assert pool.ejected() == []  # the retired instance's probe permit was handed back


def test_no_instances_picks_nothing() -> None:
    pool, _, _, made = make_pool([])
    assert pool.pick(pool.view(), None) is None
    assert made == []


def test_close_retires_everything_and_refuses_later_calls() -> None:
    pool, _, _, made = make_pool()
    held = pick(pool)
    call(pool)
    call(pool)
    channels = pool.close()
    assert sorted(c.address for c in channels) == sorted(c.address for c in made)
    assert pool.closed
    with pytest.raises(ValueError, match="closed channel"):
        pool.view()
    pool.report(*held, Verdict.SUCCESS, 0.01)  # a call ending after close: nothing left to close
    assert not any(c.closed for c in made)  # the caller closes what close() returned


def test_channels_are_made_for_every_instance_on_request() -> None:
    pool, _, _, made = make_pool()
    assert pool.channels() == []
    channels = pool.channels(create=True)
    assert sorted(c.address for c in channels) == sorted(i.address for i in (A, B, C))
    assert pool.channels(create=True) == channels and len(made) == 3
