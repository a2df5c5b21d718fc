"""The one way apimon sends an email: a subject / text / HTML triple from
templates/emails/, with a subject that is one line whatever the names in it hold
(a header cannot carry a line break; Django refuses to send one that does)."""

from __future__ import annotations

from django.core.mail import send_mail
from django.template.loader import render_to_string

from apimon.validators import single_line


def email_send(*, template: str, context: dict, recipients: list[str]) -> None:
    """Render templates/emails/<template>_{subject,body}.{txt,html} and send it."""
    if not recipients:
        return
    subject = render_to_string(f"emails/{template}_subject.txt", context)
    send_mail(
        subject=single_line(subject),
        message=render_to_string(f"emails/{template}_body.txt", context),
        html_message=render_to_string(f"emails/{template}_body.html", context),
        from_email=None,
        recipient_list=recipients,
    )
