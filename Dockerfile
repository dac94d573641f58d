# The project's image: every worker (ingest, stream, API/web view, alert receiver, simulator)
# runs `nzc <command>` from it (docker-compose.yml). Python 3.11 as the project requires.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# dependencies first (cached while only the code changes)
COPY pyproject.toml README.md ./
RUN mkdir -p nzc && touch nzc/__init__.py \
    && pip install --no-cache-dir . && pip uninstall -y nzc-monitor && rm -rf nzc
COPY . .
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --uid 10001 --home-dir /var/lib/nzc nzc \
    && mkdir -p /var/lib/nzc && chown nzc /var/lib/nzc
USER nzc
ENV NZC_STATE_DIR=/var/lib/nzc
ENTRYPOINT ["nzc"]
CMD ["--help"]
