"""The "thinking…" first answer to a request, sent with less around it than discord.py's.

Under a burst of commands the first answer was most of the bot's work before it (issue 16,
bench/README.md): `InteractionResponse.defer` goes through the webhook adapter (a route, a
per-webhook lock, a weak-reference table) and builds a whole `Message` from what Discord sends
back. This sends the same request (type 5 with `with_response`) with a prepared body on a
session of its own, keeps the adapter's rules for failures (Discord's 429 waited out,
Cloudflare's raised at once, a 5xx or a dropped connection tried again), and marks the
interaction answered exactly as `defer` does, so everything after it (followups, edits of the
reply) is discord.py's as before.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import discord

THINKING = json.dumps({"type": 5}).encode()
THINKING_PRIVATELY = json.dumps({"type": 5, "data": {"flags": 64}}).encode()
WITH_RESPONSE = {"with_response": "true"}
TRIES = 3
# Connections kept open to Discord for first answers (bot.answers bounds how many are sent at
# once; this only caps what a stray flood could open).
MAX_CONNECTIONS = 32


class FirstAnswers:
    """Sends first answers; one aiohttp session, opened on first use and closed with the bot."""

    def __init__(self, user_agent: str) -> None:
        self._headers = {"Content-Type": "application/json", "User-Agent": user_agent}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self._session

    async def defer_thinking(
        self, interaction: discord.Interaction[Any], *, private: bool
    ) -> int | None:
        """Answer "thinking…" (ephemeral when `private`); return the reply's message id (None
        when Discord's answer does not name it).

        Raise `discord.HTTPException` when Discord refuses it, as `defer` would."""
        if interaction.response.is_done():
            raise discord.InteractionResponded(interaction)
        base = discord.http.Route.BASE
        url = f"{base}/interactions/{interaction.id}/{interaction.token}/callback"
        body = THINKING_PRIVATELY if private else THINKING
        session = self._open_session()
        for attempt in range(TRIES):
            last = attempt == TRIES - 1
            try:
                async with session.post(url, data=body, params=WITH_RESPONSE) as response:
                    data = await discord.http.json_or_text(response)
                    if 200 <= response.status < 300:
                        return _answered(interaction, data)
                    if not last and _discord_rate_limit(response, data):
                        assert isinstance(data, dict)
                        await asyncio.sleep(float(data.get("retry_after", 1.0)))
                        continue
                    if not last and response.status >= 500:
                        await asyncio.sleep(0.5)
                        continue
                    raise discord.HTTPException(response, data)
            except (aiohttp.ClientConnectionError, OSError):
                if last:
                    raise
        raise AssertionError("unreachable: the last try returns or raises")


def _answered(interaction: discord.Interaction[Any], data: dict[str, Any] | str) -> int | None:
    # What `InteractionResponse.defer` records once Discord accepted the answer: from here on
    # discord.py treats the interaction as answered (followups, `is_done`).
    interaction.response._response_type = discord.InteractionResponseType.deferred_channel_message
    message = data.get("resource", {}).get("message") if isinstance(data, dict) else None
    if isinstance(message, dict) and "id" in message:
        return int(message["id"])
    return None


def _discord_rate_limit(response: aiohttp.ClientResponse, data: dict[str, Any] | str) -> bool:
    """Discord's own 429 (through its proxy, with a JSON body), not Cloudflare's HTML page."""
    return response.status == 429 and bool(response.headers.get("Via")) and isinstance(data, dict)
