# syntax=docker/dockerfile:1
# One image for every Shopkeeper service; the command picks the service:
#   docker run shopkeeper python -m services.intake
# and `python -m stack topics ...` creates the Kafka topics (docker-compose.yml's kafka-init).
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: the project and its pinned dependencies in a venv ------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml README.md* ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY shared ./shared
COPY services ./services
COPY tools ./tools
RUN pip install --no-deps . && python -m compileall -q /opt/venv/lib

# --- runtime: slim, no build tools, non-root ------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="shopkeeper" \
      org.opencontainers.image.description="Shopkeeper order-processing services (python -m services.<name>)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 shopkeeper \
    && useradd --system --uid 10001 --gid shopkeeper --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin shopkeeper
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# `python -m stack topics` (topic creation) runs from /app; the services come from the venv.
COPY stack/__init__.py stack/__main__.py ./stack/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SHOPKEEPER_HTTP_HOST=0.0.0.0
USER shopkeeper
# docs/contract.md ports: intake 8001, inventory 8002, fulfillment 8003, logistics 8004,
# aftersales 8005, analytics 8006 (each overridable with SHOPKEEPER_<SERVICE>_PORT).
EXPOSE 8001 8002 8003 8004 8005 8006
# Liveness on the service's own port: SHOPKEEPER_PORT when set, else the port the running service
# reads itself (service_port() of the `services.<name>` in the container's command).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; from shared.settings import service_port; argv = open('/proc/1/cmdline').read().split(chr(0)); name = next((a.split('.', 1)[1] for a in argv if a.startswith('services.')), ''); port = os.environ.get('SHOPKEEPER_PORT') or service_port(name); urllib.request.urlopen('http://127.0.0.1:%s/healthz' % port, timeout=4)" || exit 1
CMD ["python", "-c", "raise SystemExit('usage: python -m services.<intake|inventory|fulfillment|logistics|aftersales|analytics>')"]
