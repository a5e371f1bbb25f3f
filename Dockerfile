# One image for every demo service (gateway, order, inventory, payment, recommendation,
# notification, loadgen, panel, scrape-targets). docker-compose.yml picks the service with
# `command: ["python", "-m", "services.<name>"]`; there is deliberately no CMD here.
FROM python:3.11.15-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Extras baked into the image: `redis` for cluster limits on compose's Redis, and `panel`
# (streamlit) so the profile-gated `panel` service can run from this same image.
ARG EXTRAS=etcd,redis,demo,panel

# Dependencies first, from pyproject.toml alone, so editing telemetry/ or services/ reuses this
# layer. A missing extra fails the build (KeyError) instead of silently installing less.
COPY pyproject.toml ./
RUN python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [e for e in sys.argv[1].split(',') if e]; \
print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" \
        "$EXTRAS" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The package itself; its dependencies are already satisfied, so this only builds the wheel.
COPY README.md ./
COPY telemetry ./telemetry
RUN pip install ".[${EXTRAS}]" \
    && rm -rf build ./*.egg-info

COPY services ./services

# Non-root at run time; numeric so orchestrators can verify runAsNonRoot.
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin app
USER 10001
