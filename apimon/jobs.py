"""One tenant cannot stop a job for the others.

Every periodic job handles each item (a subscription, an invoice, a webhook event,
an organization) on its own: `job_item` runs one item in a savepoint; if it raises,
its writes are rolled back, the failure is logged with the item's ids and recorded
as a `JobFailure` (the admin lists them by job and organization), and the job goes
on with the next item. The item is not marked done, so the next run tries it
again; `job_failures_resolve` closes the record once it succeeds."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apimon.models import JobFailure

log = logging.getLogger(__name__)

ERROR_MAX = 4000


@dataclass
class Item:
    """What `job_item` yields: `failed` is set once the block has raised."""

    failed: bool = False


@contextmanager
def job_item(job: str, *, ref: str, organization_id: int | None) -> Iterator[Item]:
    """Run the block as one item of `job`: a failure is rolled back, logged,
    recorded and swallowed (the caller reads `item.failed`)."""
    item = Item()
    try:
        with transaction.atomic():
            yield item
    except Exception as exc:
        item.failed = True
        job_failure_record(job=job, ref=ref, organization_id=organization_id, error=exc)


def job_failure_record(
    *, job: str, ref: str, organization_id: int | None, error: BaseException | str
) -> None:
    """Log the failure with its ids and record it (or count it again)."""
    if isinstance(error, BaseException):
        log.error(
            "job %s: %s of organization %s failed",
            job,
            ref,
            organization_id,
            exc_info=error,
        )
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
    else:
        log.error(
            "job %s: %s of organization %s failed: %s", job, ref, organization_id, error
        )
        text = error
    now = timezone.now()
    changes = {
        "error": text[:ERROR_MAX],
        "last_seen": now,
        "organization_id": organization_id,
    }
    open_row = JobFailure.objects.filter(job=job, object_ref=ref, resolved=False)
    if open_row.update(count=F("count") + 1, **changes):
        return
    try:
        with transaction.atomic():
            JobFailure.objects.create(
                job=job, object_ref=ref, first_seen=now, **changes
            )
    except IntegrityError:  # another worker recorded it first
        open_row.update(count=F("count") + 1, **changes)


def job_failures_resolve(*, job: str, refs: Iterable[str]) -> int:
    """Close the open failures of the items that a run has now handled."""
    refs = list(refs)
    if not refs:
        return 0
    return JobFailure.objects.filter(
        job=job, object_ref__in=refs, resolved=False
    ).update(resolved=True, resolved_at=timezone.now())
