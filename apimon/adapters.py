from allauth.account.adapter import DefaultAccountAdapter

from apimon.validators import single_line


class AccountAdapter(DefaultAccountAdapter):
    """Sends a user who signed up from an invitation or a store back there."""

    def format_email_subject(self, subject: str) -> str:
        # One line, as every apimon email (apimon.emails).
        return single_line(super().format_email_subject(subject))
