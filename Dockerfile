# Fluxcord: a small image that runs `python -m bot` as a non-root user, with all state in /data.
# Build and run: see README "Run with Docker"; operations (metrics, health, backups): docs/operations.md.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
# Wheels only (every dependency ships one for CPython 3.11 on Linux): no compiler in the image.
RUN pip install --no-cache-dir --no-compile --only-binary=:all: --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATABASE_PATH=/data/fluxcord.sqlite3 \
    METRICS_PORT=9108 \
    METRICS_HOST=0.0.0.0
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin fluxcord \
    && mkdir /data && chown fluxcord:fluxcord /data
COPY --from=build /install /usr/local
USER fluxcord
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9108
# SIGTERM: stop admitting, let submits in flight get their answer, keep every job resumable, exit 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["python", "-m", "bot", "healthcheck"]
ENTRYPOINT ["python", "-m", "bot"]
