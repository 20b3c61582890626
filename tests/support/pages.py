"""A signed-in person on the server-rendered pages, through Starlette's TestClient.

`Browser` keeps the person's cookies (the TestClient's) and reads the session's CSRF token
off the pages it gets, then sends it with every form it posts, as a browser would.
"""

from __future__ import annotations

import re

import httpx2 as httpx
from fastapi.testclient import TestClient

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A TestClient with a person's cookies, who reads the CSRF token off the pages."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        response = self.client.get(path, follow_redirects=False, **kwargs)  # type: ignore[arg-type]
        found = CSRF_INPUT.search(response.text)
        if found and "/login" not in path:
            self.csrf = found.group(1)
        return response

    def post(
        self, path: str, data: dict[str, str] | None = None, **kwargs: object
    ) -> httpx.Response:
        form = {"csrf_token": self.csrf, **(data or {})}
        return self.client.post(path, data=form, follow_redirects=False, **kwargs)  # type: ignore[arg-type]

    def login(self, login: str, password: str, next_url: str = "") -> httpx.Response:
        page = self.client.get("/login", params={"next": next_url} if next_url else None)
        token = CSRF_INPUT.search(page.text)
        assert token is not None
        response = self.client.post(
            "/login",
            data={
                "login": login,
                "password": password,
                "csrf_token": token.group(1),
                "next": next_url,
            },
            follow_redirects=False,
        )
        if response.status_code == 303:
            self.get("/me")  # picks up the session's CSRF token
        return response
