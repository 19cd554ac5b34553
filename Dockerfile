# The operators' page's charting library (docs/operators.md): Chart.js from the npm registry, at the
# exact version deploy/web/package-lock.json pins, as deploy/local/install-js.sh installs it locally.
FROM node:22-slim AS web
WORKDIR /web
COPY deploy/web/package.json deploy/web/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

# One image for the five services: `python -m services.<name>` picks which one runs.
FROM python:3.11-slim
WORKDIR /app
# The packages requirements.lock pins, each checked against its hashes (the lock the tests ran with),
# then the project alone, built with the lock's setuptools: nothing is resolved beyond the lock.
COPY requirements.lock ./
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY bench ./bench
COPY --from=web /web/node_modules/chart.js/dist/chart.umd.min.js /web/node_modules/chart.js/LICENSE.md \
     ./services/metrics/static/vendor/
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation . && pip check
ENV DOSSIER_BIND_HOST=0.0.0.0 \
    DOSSIER_LOG_FORMAT=json
USER nobody
