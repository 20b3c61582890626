"""What the push watcher opens for one account (one NOTIFY connection for every polled
folder, or an IDLE per listed folder within the connection cap, none under a cap of one),
the NOTIFY command and the STATUS lines it brings, and a worker's share of the watches."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mailhaul.adapters.sources.imap.notify import NotifyPlan, status_folder
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.folders import FolderRules
from mailhaul.domain.limits import HostLimits, parse_host_table
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.services.push_plan import Planner, Target, plan_watch, share, taken_elsewhere

SPEC = AccountSpec(
    owner="ann@a.test",
    protocol=Protocol.IMAP,
    host="imap.example.net",
    port=993,
    security=Security.SSL,
    username="ann",
)


def account(**options: object) -> Account:
    return Account(id=1, spec=replace(SPEC, options=RetrievalOptions(**options)))  # type: ignore[arg-type]


def capped(text: str) -> HostLimits:
    return HostLimits(connections=parse_host_table(text, size=False))


def test_one_notify_connection_covers_every_polled_folder_but_move_to():
    polled = account(folders=("INBOX", "Lists", "Work"), move_to="Done")
    plan = plan_watch(polled, capped("*=2"), has_notify=None)
    assert plan.targets == (Target("INBOX", NotifyPlan(("Lists", "Work"), ignored=("Done",))),)
    assert plan.notify_detail == "INBOX, Lists, Work (NOTIFY)"
    every = plan_watch(account(rules=FolderRules(all_folders=True)), capped("*=2"), True)
    [target] = every.targets
    assert target.notify is not None and target.notify.every
    # the INBOX alone needs no NOTIFY (positive control: the plain IDLE of before)
    assert plan_watch(account(), capped("*=4"), None).targets == (Target("INBOX"),)


def test_without_notify_the_listed_folders_within_the_cap():
    listed = account(folders=("INBOX", "Lists", "Work"), push_folders=("INBOX", "Lists", "Work"))
    plan = plan_watch(listed, capped("*=3"), has_notify=False)
    assert [t.folder for t in plan.targets] == ["INBOX", "Lists"]
    assert plan.detail == (
        "INBOX, Lists (2 of 3 listed; the connection cap for imap.example.net is 3)"
    )
    assert len(plan_watch(listed, capped("*=4"), False).targets) == 3
    unlisted = plan_watch(account(folders=("INBOX", "Lists")), capped("*=4"), False)
    assert unlisted.targets == (Target("INBOX"),)
    assert unlisted.detail == "INBOX (the other folders polled: the server has no NOTIFY)"


def test_a_cap_of_one_leaves_no_room_for_a_watch():
    plan = plan_watch(account(), capped("imap.example.net=1, *=4"), None)
    assert plan.targets == ()
    assert plan.capped == "the connection cap for imap.example.net (1) leaves no room for a watch"
    assert plan_watch(account(), capped("imap.example.net=2"), None).targets  # control


def test_the_notify_command_and_the_status_lines_it_brings():
    plan = NotifyPlan(("Lists", "Ünïcode"))
    assert plan.command() == (
        b'NOTIFY SET (selected (MessageNew MessageExpunge)) (mailboxes "Lists" "&ANw-n&AO8-code"'
        b" (MessageNew))"
    )
    every = NotifyPlan(every=True, ignored=("Done",))
    assert every.command().endswith(b"(personal (MessageNew))")
    assert status_folder(b'* STATUS "Lists" (MESSAGES 2 UIDNEXT 3)') == (True, "Lists")
    assert status_folder(b"* STATUS Work (MESSAGES 1)") == (True, "Work")
    assert status_folder(b"* STATUS {5}") == (True, None)
    assert status_folder(b"* 3 EXISTS") == (False, None)
    assert plan.covers("Lists") and plan.covers("&ANw-n&AO8-code") and not plan.covers("Spam")
    assert every.covers("Spam") and not every.covers("Done")
    assert plan.covers(None)  # a name it cannot read: a poll too many, never one missed


@pytest.mark.parametrize(
    ("accounts", "workers", "each"), [(4, 2, 2), (3, 2, 2), (0, 1, 0), (100, 3, 37), (5, 0, 5)]
)
def test_a_workers_share(accounts: int, workers: int, each: int):
    assert share(accounts, workers) == each


def test_the_planner_keeps_a_plan_until_its_inputs_change():
    planner, limits = Planner(), HostLimits()
    first = planner.plan(account(folders=("INBOX",)), limits, None)
    assert planner.plan(account(folders=("INBOX",)), limits, None) is first  # kept
    edited = planner.plan(account(folders=("INBOX", "Lists")), limits, None)
    assert edited is not first and edited.targets[0].notify is not None  # a new plan
    assert planner.plan(account(folders=("INBOX", "Lists")), limits, False) is not edited
    other_limits = HostLimits(connections=parse_host_table("*=1", size=False))
    assert planner.plan(account(folders=("INBOX",)), other_limits, None).capped


def test_what_other_processes_plan_for_lower_ids_of_the_same_mailbox_is_taken():
    def on(account_id: int, username: str = "ann", protocol: Protocol = Protocol.IMAP) -> Account:
        return Account(id=account_id, spec=replace(SPEC, username=username, protocol=protocol))

    mine = [on(2), on(5), on(6, username="bob")]
    theirs = [on(1), on(3), on(4, username="bob"), on(7), on(8, protocol=Protocol.POP3)]
    everyone = {a.id: a for a in [*mine, *theirs]}
    elsewhere = {1: 2, 3: 1, 4: 1, 7: 3, 8: 1, 99: 5}  # 99: an account no longer watched
    # ann's 2 comes after 1 (2 connections); ann's 5 after 1 and 3; bob's 6 after bob's 4;
    # a higher id (7) waits for them, POP3 (8) is another mailbox
    assert taken_elsewhere(mine, elsewhere, everyone) == {2: 2, 5: 3, 6: 1}
    # the plan follows: under a cap of 4, ann's 5 has one connection left, for the poll
    listed = replace(
        everyone[5], spec=replace(SPEC, options=RetrievalOptions(push_folders=("INBOX", "Lists")))
    )
    assert plan_watch(listed, capped("*=4"), False, taken=3).targets == ()
    assert plan_watch(listed, capped("*=4"), False, taken=2).targets == (Target("INBOX"),)
