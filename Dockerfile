# The migration-init image: the tool, its requirements and the migration files; nothing secret.
# Connection settings arrive at run time as environment variables (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt \
    && useradd --create-home --uid 10001 --user-group migrate

COPY migrate/ ./migrate/
COPY migrations/ ./migrations/
COPY envs/ ./envs/
COPY tasks.py ./
# Byte-compile now: PYTHONDONTWRITEBYTECODE stops Python from caching bytecode at run time, so
# without this every container start would compile migrate/ again (~30 ms; bench/RESULTS.md).
RUN python -m compileall -q migrate

USER migrate

CMD ["python", "-m", "migrate", "migrate"]
