# Production image: the same code for web, worker and beat (docker-compose.yml).
FROM python:3.13-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# Collected as production runs (DEBUG=0): the manifest storage writes staticfiles.json,
# which the hashed URLs are read from at run time. The key, hosts and emulator values
# are throwaway values for this step only; the real ones come from the environment.
RUN DEBUG=0 SECRET_KEY=collectstatic-build-only-not-a-secret ALLOWED_HOSTS=localhost \
    STRIPE_EMULATOR_URL=http://127.0.0.1:12111 \
    STRIPE_EMULATOR_CONTROL_SECRET=collectstatic-build-only-not-a-secret \
    STRIPE_WEBHOOK_SECRET=whsec_collectstatic-build-only-not-a-secret \
    python manage.py collectstatic --no-input
RUN useradd --system --uid 1000 apimon && mkdir -p /app/var && chown apimon /app/var
USER apimon
EXPOSE 8000
CMD ["gunicorn", "apimon.asgi:application", "-k", "uvicorn_worker.UvicornWorker", "--bind", "0.0.0.0:8000"]
