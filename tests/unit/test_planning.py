"""The retrieval plan: property tests over any listing, memory and options."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailhaul.domain.messages import KnownMessages, MessageRef
from mailhaul.domain.options import RetrievalOptions
from mailhaul.domain.planning import DAY, RunBudget, batches, plan_fetch

uids = st.sampled_from([str(n) for n in range(1, 30)])
refs = st.builds(
    MessageRef,
    uid=uids,
    number=st.integers(1, 1000),
    size=st.integers(0, 5000),
    seen=st.booleans(),
)
options = st.builds(
    RetrievalOptions,
    keep=st.booleans(),
    fetchall=st.booleans(),
    flush=st.booleans(),
    max_size=st.integers(1, 5000),
)
known = st.builds(
    KnownMessages,
    delivered=st.frozensets(uids),
    refused=st.frozensets(uids),
)


@given(st.lists(refs, max_size=40), known, options)
def test_nothing_is_deleted_that_was_not_delivered_or_old_and_flushed(listing, memory, opts):
    plan = plan_fetch(listing, memory, opts)
    for ref in plan.delete_now:
        delivered = ref.uid in memory.delivered
        old_flushed = ref.seen and not opts.fetchall and opts.flush
        assert delivered or old_flushed
        assert ref.uid not in memory.refused or delivered


@given(st.lists(refs, max_size=40), known, options)
def test_nothing_delivered_or_refused_is_fetched_and_nothing_twice(listing, memory, opts):
    plan = plan_fetch(listing, memory, opts)
    fetched = [ref.uid for ref in plan.fetch]
    assert len(fetched) == len(set(fetched))
    assert not set(fetched) & (memory.delivered | memory.refused)
    assert all(ref.size <= opts.max_size for ref in plan.fetch)


@given(st.lists(refs, max_size=40), known, options)
def test_every_listed_message_gets_exactly_one_fate(listing, memory, opts):
    plan = plan_fetch(listing, memory, opts)
    groups = (plan.fetch, plan.delete_now, plan.too_large, plan.old, plan.refused)
    fates = [ref for group in (*groups, plan.ambiguous) for ref in group]
    assert sorted(fates, key=repr) == sorted(listing, key=repr)


@given(st.lists(refs, max_size=40), known, options)
def test_a_unique_id_listed_twice_is_neither_fetched_nor_deleted(listing, memory, opts):
    plan = plan_fetch(listing, memory, opts)
    uids = [ref.uid for ref in listing]
    twice = {uid for uid in uids if uids.count(uid) > 1}
    touched = {ref.uid for ref in (*plan.fetch, *plan.delete_now)}
    assert not twice & touched
    assert {ref.uid for ref in plan.ambiguous} == twice


def test_duplicated_uidl_leaves_both_messages_and_the_rest_is_planned_as_usual():
    listing = [MessageRef("a", 1, 10), MessageRef("a", 2, 20), MessageRef("b", 3, 10)]
    memory = KnownMessages(delivered=frozenset({"a"}))
    plan = plan_fetch(listing, memory, RetrievalOptions())
    assert plan.ambiguous == tuple(listing[:2]) and plan.delete_now == ()
    assert [ref.uid for ref in plan.fetch] == ["b"]  # positive control


@given(st.lists(refs, max_size=40), known, options)
def test_two_polls_in_a_row_never_fetch_the_same_message_twice(listing, memory, opts):
    first = plan_fetch(listing, memory, opts)
    after = KnownMessages(
        delivered=memory.delivered | {ref.uid for ref in first.fetch}, refused=memory.refused
    )
    second = plan_fetch(listing, after, opts)
    assert not {r.uid for r in first.fetch} & {r.uid for r in second.fetch}


def test_keep_with_fetchall_never_redelivers():
    listing = [MessageRef("1", 1, 10, seen=True), MessageRef("2", 2, 10, seen=False)]
    opts = RetrievalOptions(keep=True, fetchall=True)
    first = plan_fetch(listing, KnownMessages(), opts)
    assert [r.uid for r in first.fetch] == ["1", "2"]
    second = plan_fetch(listing, KnownMessages(delivered=frozenset({"1", "2"})), opts)
    assert second.fetch == () and second.delete_now == ()


def test_seen_messages_are_old_without_fetchall_and_flushed_with_flush():
    listing = [MessageRef("1", 1, 10, seen=True)]
    assert plan_fetch(listing, KnownMessages(), RetrievalOptions()).old == tuple(listing)
    flushed = plan_fetch(listing, KnownMessages(), RetrievalOptions(keep=True, flush=True))
    assert flushed.delete_now == tuple(listing)


def test_delivered_but_still_listed_is_deleted_unless_kept():
    listing = [MessageRef("7", 1, 10)]
    memory = KnownMessages(delivered=frozenset({"7"}))
    assert plan_fetch(listing, memory, RetrievalOptions()).delete_now == tuple(listing)
    assert plan_fetch(listing, memory, RetrievalOptions(keep=True)).old == tuple(listing)


def test_oversized_message_is_left_and_reported():
    listing = [MessageRef("1", 1, 101), MessageRef("2", 2, 100)]
    plan = plan_fetch(listing, KnownMessages(), RetrievalOptions(max_size=100))
    assert [r.uid for r in plan.too_large] == ["1"]
    assert [r.uid for r in plan.fetch] == ["2"]


@given(st.lists(refs, max_size=60), st.integers(1, 10), st.integers(1, 20000))
def test_batches_keep_order_and_limits(listing, count, size):
    parts = batches(listing, count, size)
    assert [r for part in parts for r in part] == listing
    for part in parts:
        assert 1 <= len(part) <= count
        assert len(part) == 1 or sum(r.size for r in part) <= size


def test_kept_mail_is_deleted_once_its_days_have_passed():
    listing = [MessageRef("1", 1, 10), MessageRef("2", 2, 10), MessageRef("3", 3, 10)]
    now = 1_000_000.0
    known = KnownMessages(
        delivered=frozenset({"1", "2"}),
        delivered_at={"1": now - 30 * DAY, "2": now - 29 * DAY},
    )
    opts = RetrievalOptions(keep=True, delete_after_days=30)
    plan = plan_fetch(listing, known, opts, now)
    assert [r.uid for r in plan.expired] == ["1"] == [r.uid for r in plan.delete_now]
    assert [r.uid for r in plan.old] == ["2"]
    assert [r.uid for r in plan.fetch] == ["3"]
    # without keep there is nothing to wait for; without a clock nothing expires
    assert plan_fetch(listing, known, opts).expired == ()
    assert plan_fetch(listing, known, RetrievalOptions(keep=True), now).expired == ()


def test_a_run_budget_takes_what_fits_and_always_one_message():
    refs = [MessageRef(str(n), n, 100) for n in range(1, 6)]
    budget = RunBudget(messages=3)
    assert [r.uid for r in budget.take(refs[:2])] == ["1", "2"]
    assert not budget.reached
    assert [r.uid for r in budget.take(refs[2:])] == ["3"]  # across folders
    assert budget.reached
    by_size = RunBudget(bytes=250)
    assert [r.uid for r in by_size.take(refs)] == ["1", "2"]
    huge = RunBudget(bytes=10)
    assert [r.uid for r in huge.take(refs)] == ["1"]  # one message always fits
    assert RunBudget().take(refs) == refs and not RunBudget().reached
