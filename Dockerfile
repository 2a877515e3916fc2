# The proxy as deployed: Gunicorn with gevent workers, the same command and gunicorn.conf.py as on a host.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 PORT=8000 \
    DATABASE_URL=sqlite:////data/proxy.db \
    SPOOL_DIR=/data/spool

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY app.py config.py models.py wsgi.py gunicorn.conf.py ./
COPY proxy ./proxy

# SQLite file, its WAL and the spool live on the volume, so records survive the container. SPOOL_DIR
# is set because a DATABASE_URL for PostgreSQL would otherwise put the spool in /app/instance, which
# the proxy user may not create and a new container would not have.
# /app/instance is where the host's own files go with a networked database (the client-change marker,
# the cool-down and quota fallbacks, Live sessions, the periodic jobs' locks): the proxy user could not
# make it in /app, and each of them would fail or fall back to one worker's memory.
RUN useradd --system --home /app proxy && mkdir -p /data /app/instance && chown proxy /data /app/instance
USER proxy
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health', timeout=4)"
# Gunicorn turns SIGTERM into a graceful stop: requests and streams in flight finish first.
STOPSIGNAL SIGTERM
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
