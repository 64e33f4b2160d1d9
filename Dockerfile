# persistd: the HTTP service. Build: docker build -t persistd .
# The build stage makes the persistd wheel and installs it, with the pinned dependencies of
# constraints.txt, into /opt/venv; the final image gets that venv and no source tree.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY constraints.txt pyproject.toml README.md LICENSE ./
COPY app ./app
COPY migrations ./migrations
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt /wheels/persistd-*.whl

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PERSISTD_HOST=0.0.0.0 \
    PERSISTD_PORT=8000 \
    PERSISTD_WORKERS=1 \
    PERSISTD_GRACEFUL_TIMEOUT=20
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin persistd
COPY --from=build /opt/venv /opt/venv
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PERSISTD_PORT', '8000'), timeout=3)"]
CMD ["sh", "-c", "exec uvicorn persistd.main:create_app --factory --host \"$PERSISTD_HOST\" --port \"$PERSISTD_PORT\" --workers \"$PERSISTD_WORKERS\" --timeout-graceful-shutdown \"$PERSISTD_GRACEFUL_TIMEOUT\" --http persistd.protocol:HttpProtocol --proxy-headers --no-access-log"]
