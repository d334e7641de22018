# redis-dashboard in a container.
#   docker build -t redis-dashboard .
#   docker run -p 8000:8000 redis-dashboard          # the demo (a private redis-server inside)
#   docker run -p 8000:8000 -e REDIS_DASHBOARD_URL=redis://host:6379/0 \
#     -e REDIS_DASHBOARD_USERNAME=admin -e REDIS_DASHBOARD_PASSWORD=... redis-dashboard
# Inside a container the dashboard listens on 0.0.0.0: `serve` requires basic auth, and the
# demo makes up a login and prints it in the container log (docker logs) unless given one.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REDIS_DASHBOARD_HOST=0.0.0.0 \
    REDIS_DASHBOARD_PORT=8000

# redis-server only for the demo: the demo starts its own (no service runs in the image)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 dashboard \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin dashboard

WORKDIR /src
COPY pyproject.toml README.md ./
COPY dashboard ./dashboard
COPY lua ./lua
COPY templates ./templates
COPY static ./static
# hadolint ignore=DL3013
RUN pip install --no-cache-dir . \
    && rm -rf /src/*

USER 10001:10001
WORKDIR /home/dashboard
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('REDIS_DASHBOARD_PORT', '8000'), timeout=4)"]

# No URL: the demo. A URL: the dashboard on that Redis (gunicorn either way, as PID 1
# through exec, so `docker stop` reaches it and the demo stops its redis-server).
CMD ["sh", "-c", "if [ -n \"$REDIS_DASHBOARD_URL\" ]; then exec redis-dashboard serve; else exec redis-dashboard demo; fi"]
