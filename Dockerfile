FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY nzc nzc
COPY ingest ingest
COPY stream stream
COPY carbon carbon
COPY analytics analytics
COPY dashboards dashboards
COPY simulators simulators
COPY db db
RUN pip install --no-cache-dir .
ENTRYPOINT ["nzc"]
