# One image for the worker, the web app and migrations (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir -e /app && useradd --system --uid 10001 oo \
    && mkdir -p /var/lib/oo && chown oo /var/lib/oo
USER oo
ENV OO_STATE_DIR=/var/lib/oo
ENTRYPOINT ["oo"]
