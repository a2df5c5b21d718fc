from django import forms

from apimon.models import Role


class OrganizationForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Organization name",
        help_text="Shown in your store. Its address is made from it: /t/<name>/.",
        widget=forms.TextInput(
            attrs={"autofocus": True, "placeholder": "Acme Weather"}
        ),
    )


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(
        choices=[(Role.PUBLISHER, "Publisher"), (Role.OWNER, "Owner")],
        initial=Role.PUBLISHER,
        help_text="Publishers manage APIs and tiers; owners also handle billing, "
        "Stripe and members.",
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
