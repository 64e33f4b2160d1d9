# persistd: the HTTP service. Build: docker build -t persistd .
# The package persistd (source in app/, migrations in migrations/) is installed editable for now.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/persistd
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
# Editable: the venv points at /srv/persistd, so `persistd migrate` finds migrations/ there.
RUN /opt/venv/bin/pip install --no-cache-dir -e .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PERSISTD_HOST=0.0.0.0 \
    PERSISTD_PORT=8000 \
    PERSISTD_WORKERS=1 \
    PERSISTD_GRACEFUL_TIMEOUT=20
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin persistd
WORKDIR /srv/persistd
COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv/persistd /srv/persistd
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PERSISTD_PORT', '8000'), timeout=3)"]
CMD ["sh", "-c", "exec uvicorn persistd.main:create_app --factory --host \"$PERSISTD_HOST\" --port \"$PERSISTD_PORT\" --workers \"$PERSISTD_WORKERS\" --timeout-graceful-shutdown \"$PERSISTD_GRACEFUL_TIMEOUT\" --http persistd.protocol:HttpProtocol --proxy-headers --no-access-log"]
