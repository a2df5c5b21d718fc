"""Validators shared by every app's models and forms."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models

# C0 controls (tab and line breaks included), DEL, C1 controls, and Unicode's line
# and paragraph separators: none belongs in a name shown on one line, and a line
# break in a name would end up in an email header.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

SINGLE_LINE_MESSAGE = (
    "Use one line of text: line breaks, tabs and other control characters are "
    "not allowed."
)


def validate_single_line(value: str) -> None:
    """Refuse control characters in a name or another one-line text."""
    if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
        raise ValidationError(SINGLE_LINE_MESSAGE, code="control_characters")


def single_line(value: str) -> str:
    """The text with each run of control characters and whitespace made one space:
    for text that must fit on one line whatever the database holds (an email
    subject, a log field)."""
    return " ".join(CONTROL_CHARACTERS.sub(" ", value).split())


class SingleLineCharField(models.CharField):
    """A CharField for names: refuses control characters in model validation (so
    in every ModelForm and the admin).

    The validator is not part of the column, so the field reports itself as a
    plain CharField to migrations: no migration for adding it to a model."""

    default_validators = [validate_single_line]

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.CharField", args, kwargs

    def formfield(self, **kwargs):
        field = super().formfield(**kwargs)
        if validate_single_line not in field.validators:
            field.validators.append(validate_single_line)
        return field
