"""The files the simulator serves: results and origins of tasks, uploads, and download links."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from aiohttp import web

from bot.kie_sim.images import ASPECT_RATIOS, render, size_for
from bot.kie_sim.model import MARKER_RE, SimClock, SimConfig, SimTask, StoredFile

# (bytes, MIME type) of a file.
FileData = tuple[bytes, str]


class FileStore:
    """Serves ``/files/result|origin/<name>``, ``/files/upload|dl/<token>/<name>``."""

    def __init__(
        self,
        config: SimConfig,
        clock: SimClock,
        tasks: dict[str, SimTask],
        base_url: Callable[[], str],
    ) -> None:
        self._config = config
        self._clock = clock
        self._tasks = tasks
        self._base_url = base_url
        self._uploads: dict[str, StoredFile] = {}
        self._links: dict[str, tuple[str, float]] = {}

    def store_upload(self, data: bytes, mime: str, name: str) -> str:
        """Keep an uploaded file; its URL is ``/files/upload/<returned token>/<name>``."""
        token = secrets.token_hex(12)
        self._uploads[token] = StoredFile(
            data=data, mime=mime, name=name, created_sim=self._clock.now()
        )
        return token

    def issue_link(self, url: str) -> str:
        """A temporary download link for one of our files (``config.download_url_ttl``)."""
        token = secrets.token_hex(16)
        self._links[token] = (url, self._clock.now() + self._config.download_url_ttl)
        name = url.rsplit("/", 1)[-1]
        return f"{self._base_url()}/files/dl/{token}/{name}"

    def local_file(self, url: str, *, check_expiry: bool = True) -> FileData | None:
        """The bytes and MIME type behind a URL this simulator issued, or None."""
        base_url = self._base_url()
        prefix = f"{base_url}/files/"
        if not base_url or not url.startswith(prefix):
            return None
        parts = url[len(prefix) :].split("?", 1)[0].split("/")
        return self._lookup(parts, check_expiry=check_expiry)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="Method Not Allowed")
        parts = request.path[len("/files/") :].split("/")
        found = self._lookup(parts, check_expiry=True)
        if found is None:
            return web.Response(status=404, text="Not Found")
        data, mime = found
        return web.Response(body=data, content_type=mime)

    def task_image(self, task: SimTask) -> bytes:
        """The task's result image, rendered once from its prompt and aspect ratio."""
        if task.image is None:
            ratio_name = task.request.get("aspectRatio")
            if ratio_name in ASPECT_RATIOS:
                ratio = ASPECT_RATIOS[ratio_name]
            elif task.input_size is not None:
                ratio = task.input_size
            else:
                ratio = ASPECT_RATIOS["16:9"]
            size = size_for(ratio, self._config.result_long_side)
            prompt = MARKER_RE.sub("", str(task.request.get("prompt", ""))).strip()
            task.image = render(
                prompt,
                size=size,
                fmt=task.output_format,
                noise=task.noise,
                seed=int(task.task_id[:6], 16),
            )
        return task.image

    def _lookup(self, parts: list[str], *, check_expiry: bool) -> FileData | None:
        if len(parts) == 2 and parts[0] in ("result", "origin"):
            return self._task_file(parts[0], parts[1], check_expiry=check_expiry)
        now = self._clock.now()
        if len(parts) == 3 and parts[0] == "upload":
            stored = self._uploads.get(parts[1])
            if stored is None or stored.name != parts[2]:
                return None
            if check_expiry and now - stored.created_sim > self._config.upload_ttl:
                return None
            return stored.data, stored.mime
        if len(parts) == 3 and parts[0] == "dl":
            link = self._links.get(parts[1])
            if link is None or (check_expiry and now > link[1]):
                return None
            return self.local_file(link[0], check_expiry=False)
        return None

    def _task_file(self, kind: str, name: str, *, check_expiry: bool) -> FileData | None:
        task = self._tasks.get(name.rsplit(".", 1)[0])
        if task is None or task.flag != 1 or task.finished_sim is None:
            return None
        url = task.result_url if kind == "result" else task.origin_url
        if url is None or not url.endswith("/" + name):
            return None
        ttl = self._config.result_ttl if kind == "result" else self._config.origin_ttl
        if check_expiry and self._clock.now() - task.finished_sim > ttl:
            return None
        mime = "image/png" if task.output_format == "png" else "image/jpeg"
        return self.task_image(task), mime
