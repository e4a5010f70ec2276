# syntax=docker/dockerfile:1
# One image for every Puente service (compose.yaml): `puente migrate`, `serve`, `worker`,
# `beat`. Built in two stages so that the image carries no compilers and no source tree,
# only a virtualenv with Puente installed, its migrations and compiled catalogs inside.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/puente
ENV PATH=/opt/puente/bin:$PATH
WORKDIR /src

# Dependencies first, read from pyproject.toml alone: a change to the code reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); \
print(chr(10).join(d['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY . .
# The .mo files are build products (not in git); compile them before the package is built
# so that they travel inside it as package data.
RUN pybabel compile -d translation/locale -D messages \
    && pip install --no-deps . \
    && puente --help >/dev/null


FROM python:3.11-slim
ENV PATH=/opt/puente/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 puente \
    && useradd --system --uid 10001 --gid puente --home-dir /app --no-create-home puente \
    && mkdir -p /app/var \
    && chown puente:puente /app/var
COPY --from=build /opt/puente /opt/puente
# `var/` holds the beat schedule; nothing else in the image is writable by the service.
WORKDIR /app
USER puente:puente
EXPOSE 8000
CMD ["puente", "serve", "--host", "0.0.0.0", "--port", "8000"]
