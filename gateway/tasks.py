import logging

from celery import shared_task

from gateway import services

log = logging.getLogger(__name__)


@shared_task
def flush_usage() -> dict:
    """Beat, every few seconds: Redis counters and ingested events → UsageRecord
    (exactly once)."""
    result = services.usage_flush()
    if result.requests:
        log.info("flushed %s requests in %s batches", result.requests, result.batches)
    if result.pending:
        log.info("added %s rows of ingested usage", result.pending)
    return result.__dict__


@shared_task
def send_quota_alerts() -> dict:
    """Beat, every minute: 80 % / 100 % quota emails, once per window each."""
    return services.quota_alerts_send().__dict__
