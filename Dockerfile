# One image for the five services: `python -m services.<name>` picks which one runs.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY bench ./bench
RUN pip install --no-cache-dir .
ENV DOSSIER_BIND_HOST=0.0.0.0 \
    DOSSIER_LOG_FORMAT=json
USER nobody
