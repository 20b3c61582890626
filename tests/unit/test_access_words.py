"""A refused page or request says which roles it is for, in the names the UI uses."""

from __future__ import annotations

from mailhaul.domain.access import Principal, Role
from mailhaul.web.auth import Access

USER = Principal(user_id=3, login="alice@example.org", role=Role.USER)
DOMAIN_ADMIN = Principal(user_id=2, login="boss", role=Role.DOMAIN_ADMIN)


def test_the_users_page_tells_a_user_who_it_is_for():
    words = Access.MANAGER.refusal("this page", USER)
    assert words == ("this page is for an admin or a domain admin; you are signed in as a user")
    assert "manager" not in words  # a role that exists nowhere in the UI


def test_an_admin_only_request_names_the_admin_role():
    words = Access.ADMIN.refusal("this request", DOMAIN_ADMIN)
    assert words == "this request is for an admin; you are signed in as a domain admin"
