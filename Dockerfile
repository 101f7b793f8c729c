# syntax=docker/dockerfile:1
# kontext-bot: two stages — build wheels with the compiler toolchain, run on a slim base as non-root.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

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
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
USER kontext
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT', '8080'), timeout=4).status == 200 else 1)"]
# SIGTERM is handled by the bot: it stops taking commands, stops its loops, closes the ledger.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
