import logging

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from apimon.health import HEARTBEAT_KEY

log = logging.getLogger(__name__)


@shared_task
def heartbeat() -> str:
    """Proves beat and a worker are alive: the home page shows the last beat."""
    now = timezone.now().isoformat()
    cache.set(HEARTBEAT_KEY, now, timeout=None)
    log.info("heartbeat %s", now)
    return now
