"""Pairing a phone with a real hub over HTTP, as its page does: what the pairing tests share."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from intercom.hub.pairing import PhoneBook

from ..conftest import Hub


@dataclass
class Desk:
    """The hub's ``/desk/api/`` from a browser's side, and the hub's phone book (the CLI's side)."""

    hub: Hub
    http: httpx.AsyncClient
    book: PhoneBook

    async def pair(self, identity: str = "anna_phone", device: str = "test browser") -> str:
        """``intercom web add`` then the page's ``POST /desk/api/pair``: the credential."""
        code = (await self.book.invite(identity)).code
        response = await self.http.post("/desk/api/pair", json={"code": code, "device": device})
        assert response.status_code == 201, response.text
        assert response.json()["identity"] == identity
        return response.json()["credential"]

    async def token(self, credential: str) -> httpx.Response:
        return await self.http.post("/desk/api/token", headers={"Authorization": f"Bearer {credential}"})

    async def jwt(self, credential: str) -> str:
        response = await self.token(credential)
        assert response.status_code == 200, response.text
        return response.json()["jwt"]

    async def get(self, path: str, credential: str, **params: object) -> httpx.Response:
        return await self.http.get(path, params=params, headers={"Authorization": f"Bearer {credential}"})
