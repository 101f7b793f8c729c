"""Running the real bot (`python -m bot`) as a subprocess against the fake Discord."""

from __future__ import annotations

import asyncio
import glob
import importlib.util
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from fakediscord import FakeDiscord

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMANDS_PUT = r"^/applications/\d+(/guilds/\d+)?/commands$"


def clean_env(env: Mapping[str, str]) -> dict[str, str]:
    """A subprocess environment of only ``env`` plus PATH, HOME and PYTHONPATH (the repo root).

    Nothing else of the test runner's own environment (a developer's shell, CI's variables)
    reaches the bot, so it cannot change a result.
    """
    base = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "PYTHONPATH": str(REPO_ROOT),  # `bot` and `cogs` are imported from the checkout
    }
    return {**base, **env}


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


async def run_cli(env: dict[str, str], *args: str) -> Run:
    """`python -m bot ARGS` with only ``env`` (clean_env), in an empty working directory."""
    with tempfile.TemporaryDirectory(prefix="kontext-cli-") as workdir:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            cwd=workdir,
            env=clean_env(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    """One bot process (restartable on the same env/ledger) with its log in a file.

    ``await start()`` waits for the fake to see IDENTIFY and (first start, or whenever the
    fake has no commands yet) the command-sync PUT. ``stop()`` sends SIGINT and asserts exit 0.
    The process gets only ``env`` (see ``clean_env``) and runs in ``workdir`` (default: the
    log's directory, a test's tmp_path), so no ``.env`` or shell variable of the developer's
    reaches it.
    """

    def __init__(
        self,
        fake: FakeDiscord,
        env: dict[str, str],
        log_path: Path,
        *,
        ready_timeout: float = 20.0,
        workdir: Path | None = None,
    ) -> None:
        self.fake = fake
        self.env = dict(env)
        self.log_path = log_path
        self.workdir = workdir if workdir is not None else log_path.parent
        self.ready_timeout = ready_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.exit_codes: list[int] = []
        self.allow_tracebacks = False
        self._log: IO[bytes] | None = None

    @property
    def http_url(self) -> str:
        """The bot's own HTTP server (health, metrics, KIE callbacks)."""
        return f"http://{self.env['HTTP_HOST']}:{self.env['HTTP_PORT']}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def log_text(self) -> str:
        """Everything every run of the bot wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def start(
        self, env: dict[str, str] | None = None, *, wait_for_sync: bool | None = None
    ) -> BotProcess:
        """Start ``python -m bot`` (again); ``env`` adds/overrides variables from now on."""
        identifies = len(self.fake.identifies)
        mark = self.fake.mark()
        if wait_for_sync is None:
            wait_for_sync = self.starts == 0 or not self.fake.command_names()
        await self.launch(env)

        def ready() -> bool:
            if not self.running:
                return True  # exited early: fail below with the log
            if len(self.fake.identifies) <= identifies or not self.fake.connected:
                return False
            return not wait_for_sync or bool(self.fake.find_calls("PUT", COMMANDS_PUT, since=mark))

        await self.fake.wait_until(ready, self.ready_timeout, what="bot IDENTIFY + command sync")
        if not self.running:
            assert self.proc is not None
            raise AssertionError(
                f"the bot exited early with code {self.proc.returncode}:\n{self.log_text()}"
            )
        return self

    async def launch(self, env: dict[str, str] | None = None) -> None:
        """Start ``python -m bot`` without waiting for anything (the fake may not be up yet)."""
        assert not self.running, "the bot is already running"
        self.env.update(env or {})
        self.starts += 1
        self._log = self.log_path.open("ab")
        self._log.write(f"\n===== bot start #{self.starts} =====\n".encode())
        self._log.flush()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=str(self.workdir),
            env=clean_env(self.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def _wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
        self.exit_codes.append(code)
        return code

    async def stop(self, timeout: float = 10.0, *, expect_code: int | None = 0) -> int:
        """SIGINT, wait for exit; asserts the exit code (0 by default; None to skip)."""
        assert self.proc is not None, "the bot was never started"
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = await self._wait_exit(timeout)
        except TimeoutError:
            self.proc.kill()
            await self._wait_exit(5)
            raise AssertionError(
                f"the bot did not exit within {timeout}s of SIGINT:\n{self.log_text()}"
            ) from None
        if expect_code is not None:
            assert code == expect_code, f"bot exit code {code} != {expect_code}:\n{self.log_text()}"
        return code

    async def kill(self) -> int:
        """SIGKILL (a crash: no cleanup) and wait."""
        assert self.proc is not None, "the bot was never started"
        if self.proc.returncode is None:
            self.proc.kill()
        return await self._wait_exit(10)

    async def teardown(self) -> None:
        """Stop if running (asserting exit 0) and assert no traceback in the log."""
        if self.running:
            await self.stop()
        elif self._log is not None:
            await self._wait_exit(5)
        if not self.allow_tracebacks:
            assert "Traceback" not in self.log_text(), f"traceback in bot log:\n{self.log_text()}"
        self.assert_no_secrets()

    def assert_no_secrets(self) -> None:
        """No byte of the bot's log holds the Discord token, the KIE key, the HMAC key or the
        token of an interaction the fake sent."""
        raw = self.log_path.read_bytes() if self.log_path.exists() else b""
        for name in ("DISCORD_TOKEN", "KIE_API_KEY", "KIE_WEBHOOK_HMAC_KEY"):
            value = self.env.get(name, "").strip()
            if len(value) >= 4:
                assert value.encode() not in raw, f"{name} appears in the bot log {self.log_path}"
        for interaction in self.fake.interactions.values():
            assert interaction.token.encode() not in raw, (
                f"interaction {interaction.id}'s token appears in the bot log {self.log_path}"
            )


FAKETIME_LIBRARY = "libfaketime.so.1"


def faketime_library() -> Path:
    """libfaketime: the build shipped in the ``libfaketime`` package of the dev extra, else the
    system's (Debian package ``faketime``); a clear failure when neither is there."""
    found: list[str] = []
    spec = importlib.util.find_spec("libfaketime")
    if spec is not None and spec.origin is not None:
        vendored = Path(spec.origin).parent / "vendor" / "libfaketime" / "src" / FAKETIME_LIBRARY
        found += [str(vendored)] if vendored.is_file() else []
    found += sorted(glob.glob(f"/usr/lib/*/faketime/{FAKETIME_LIBRARY}"))
    found += sorted(glob.glob(f"/usr/lib*/faketime/{FAKETIME_LIBRARY}"))
    assert found, (
        f"{FAKETIME_LIBRARY} is missing: this test moves the bot's wall clock with libfaketime. "
        "Install the dev extra (`pip install -e '.[dev]'`, which brings the libfaketime package) "
        "or `apt-get install faketime`."
    )
    return Path(found[0])


class BotClock:
    """The bot's wall clock (``time.time``) and the fake's, moved together by the test.

    Start the bot with ``**clock.env`` and it reads its time through libfaketime from a file
    this object rewrites; monotonic time and asyncio timers are left alone. The KIE simulator
    and the test process keep real time.
    """

    def __init__(self, fake: FakeDiscord, path: Path) -> None:
        self.fake = fake
        self.path = path
        self.offset = 0.0
        self._write()
        self.env = {
            "LD_PRELOAD": str(faketime_library()),
            "FAKETIME_TIMESTAMP_FILE": str(path),
            "FAKETIME_NO_CACHE": "1",  # re-read the file on every call: advance() acts at once
            "DONT_FAKE_MONOTONIC": "1",
        }

    def advance(self, seconds: float) -> None:
        """Move the bot's wall clock and ``fake.clock`` forward by ``seconds``."""
        self.offset += seconds
        self._write()
        self.fake.clock.advance(seconds)

    def _write(self) -> None:
        # Replace the file in one step: libfaketime must never read it half written.
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(f"+{self.offset:.3f}\n")
        os.replace(tmp, self.path)
