"""A subscriber using the store over HTTP (allauth's login form, CSRF and the
store's forms), for scenarios that need what a person sees, without a browser."""

from __future__ import annotations

import re

import httpx


class StoreSession:
    def __init__(self, base_url: str, email: str, password: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=120, follow_redirects=False)
        page = self.http.get("/accounts/login/")
        answer = self.http.post(
            "/accounts/login/",
            data={
                "csrfmiddlewaretoken": _csrf(page.text),
                "login": email,
                "password": password,
            },
            headers={"Referer": f"{base_url}/accounts/login/"},
        )
        if answer.status_code != 302:
            raise RuntimeError(f"login as {email} answered {answer.status_code}")

    def subscribe(self, org: str, api_id: int, shopper: dict) -> httpx.Response:
        path = f"/t/{org}/store/apis/{api_id}/"
        page = self.http.get(path)
        return self.http.post(
            f"{path}subscribe/",
            data={
                "csrfmiddlewaretoken": _csrf(page.text),
                "application": shopper["application"],
                "tier": shopper["tier"],
            },
            headers={"Referer": f"{self.http.base_url}{path}"},
        )


def _csrf(html: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    if not found:
        raise RuntimeError("no CSRF token on the page")
    return found.group(1)
