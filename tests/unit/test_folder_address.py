"""LMTP's ``local+Folder@domain``: one address whatever the folder is called (the name may
come from the source server), or none where it cannot travel."""

from __future__ import annotations

import pytest

from mailhaul.adapters.sinks.envelope import folder_address

ANN = "ann@example.org"


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("Lists/python", "ann+Lists/python@example.org"),  # a dot-atom as it stands
        ("Lists.python", "ann+Lists.python@example.org"),
        ("My Folder", '"ann+My Folder"@example.org'),
        ("a> NOTIFY=NEVER", '"ann+a> NOTIFY=NEVER"@example.org'),  # no RCPT parameter
        ('say "hi"', '"ann+say \\"hi\\""@example.org'),
        ("back\\slash", '"ann+back\\\\slash"@example.org'),
        ("..", '"ann+.."@example.org'),  # not a dot-atom
    ],
)
def test_ascii_names_travel_as_one_address(folder: str, expected: str) -> None:
    assert folder_address(ANN, "+", folder, utf8=False) == expected


def test_names_outside_ascii_need_smtputf8() -> None:
    assert folder_address(ANN, "+", "Entwürfe", utf8=False) is None
    assert folder_address(ANN, "+", "Entwürfe", utf8=True) == "ann+Entwürfe@example.org"
    assert folder_address(ANN, "+", "Mes dossiers", utf8=True) == '"ann+Mes dossiers"@example.org'


@pytest.mark.parametrize("folder", ["a\r\nRSET", "tab\there", "x" * 70])
def test_control_characters_and_long_names_do_not_travel(folder: str) -> None:
    assert folder_address(ANN, "+", folder, utf8=True) is None
    assert folder_address(ANN, "+", "short", utf8=True) == "ann+short@example.org"
