# One image for web, worker, beat and the collectors.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY tenancy ./tenancy
COPY metering ./metering
COPY billing ./billing
COPY web ./web
COPY manage.py ./
RUN pip install . && python manage.py collectstatic --noinput -v0 \
    && useradd --system --uid 10001 tessera && mkdir -p /app/var && chown tessera /app/var
COPY examples ./examples
USER tessera
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "-b", "0.0.0.0:8000", "-w", "4", "--access-logfile", "-"]
