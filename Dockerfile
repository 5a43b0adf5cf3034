# One image for web, worker, beat and the collectors, built from the whole tree: .dockerignore
# says what stays out (checkouts' own files, tests, benchmarks), never a list of apps here.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PYTHONPATH=/app
WORKDIR /app
# Dependencies first, from pyproject.toml alone, so that a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
# The code runs from /app (PYTHONPATH): every app in INSTALLED_APPS, config, manage.py, examples.
COPY . .
RUN python manage.py collectstatic --noinput -v0 \
    && useradd --system --uid 10001 tessera && mkdir -p /app/var && chown tessera /app/var
USER tessera
EXPOSE 8000
# Sync workers behind the buffering proxy of docker-compose.yml (deploy/nginx.conf): nginx reads
# slow clients' requests and responses, so a worker is only ever busy with Django.
CMD ["gunicorn", "config.wsgi", "-b", "0.0.0.0:8000", "-w", "4", "--timeout", "60", "--access-logfile", "-"]
