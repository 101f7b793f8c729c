# syntax=docker/dockerfile:1
# kontext-bot: two stages — build wheels with the compiler toolchain, run on a slim base as non-root.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY bot ./bot
COPY cogs ./cogs
# The build compiles the message catalogues (.po -> .mo) into the wheel: setup.py.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    DATABASE_URL=sqlite:////data/kontext-bot.sqlite3
RUN groupadd --system --gid 10001 kontext \
 && useradd --system --uid 10001 --gid kontext --home-dir /app --shell /usr/sbin/nologin kontext \
 && mkdir -p /data /app \
 && chown kontext:kontext /data /app
# The wheels are mounted for the install only, so they never become a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl
WORKDIR /app
# Numeric, so orchestrators that insist on a non-root uid (runAsNonRoot) can verify it.
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT', '8080'), timeout=4).status == 200 else 1)"]
# SIGTERM is handled by the bot: it answers late commands "restarting" for SHUTDOWN_GRACE_SECONDS,
# stops its loops, closes the ledger and exits 0 (give it 15 s or more: compose sets 30 s).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
