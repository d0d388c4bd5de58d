# Narrows image: the demo app, the collector and the dashboard (one image, several commands).
# Multi-stage: build wheels with the compiler toolchain, run on a slim base as a non-root user.
FROM python:3.11.10-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY narrows ./narrows
COPY instrumentation ./instrumentation
COPY collector ./collector
COPY dashboard ./dashboard
COPY demo_app ./demo_app
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.10-slim-bookworm
# /data belongs to the user, so a fresh named volume mounted there (the collector's DuckDB file
# and write-ahead log in docker-compose.yml) inherits that ownership and is writable.
RUN useradd --create-home --uid 10001 narrows && install -d -o narrows -g narrows /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --disable-pip-version-check /wheels/*.whl && rm -rf /wheels
USER narrows
WORKDIR /home/narrows
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["narrows"]
CMD ["--help"]
