"""Where a connected Stripe account can be paid out.

apimon charges subscribers directly on the publisher's own Standard account, so that
account must be in a country where Stripe offers accounts that accept payments and pay
out to a local bank account. This is Stripe's public list of supported business
locations (stripe.com/global; the Connect "Country Specs" API lists the same codes),
kept here in one place. Countries Stripe lists as invite-only or preview (India,
Indonesia) are left out: an account there may not be able to take apimon's payments.

When Stripe adds a country, add its ISO 3166-1 alpha-2 code here.
"""

from __future__ import annotations

STRIPE_PAYOUT_COUNTRIES: frozenset[str] = frozenset(
    {
        "AE",  # United Arab Emirates
        "AT",  # Austria
        "AU",  # Australia
        "BE",  # Belgium
        "BG",  # Bulgaria
        "BR",  # Brazil
        "CA",  # Canada
        "CH",  # Switzerland
        "CY",  # Cyprus
        "CZ",  # Czech Republic
        "DE",  # Germany
        "DK",  # Denmark
        "EE",  # Estonia
        "ES",  # Spain
        "FI",  # Finland
        "FR",  # France
        "GB",  # United Kingdom
        "GI",  # Gibraltar
        "GR",  # Greece
        "HK",  # Hong Kong
        "HR",  # Croatia
        "HU",  # Hungary
        "IE",  # Ireland
        "IT",  # Italy
        "JP",  # Japan
        "LI",  # Liechtenstein
        "LT",  # Lithuania
        "LU",  # Luxembourg
        "LV",  # Latvia
        "MT",  # Malta
        "MX",  # Mexico
        "MY",  # Malaysia
        "NL",  # Netherlands
        "NO",  # Norway
        "NZ",  # New Zealand
        "PL",  # Poland
        "PT",  # Portugal
        "RO",  # Romania
        "SE",  # Sweden
        "SG",  # Singapore
        "SI",  # Slovenia
        "SK",  # Slovakia
        "TH",  # Thailand
        "US",  # United States
    }
)


def supports_payouts(country: str | None) -> bool:
    """True if Stripe pays out to accounts in `country` (ISO 3166-1 alpha-2)."""
    return bool(country) and country.upper() in STRIPE_PAYOUT_COUNTRIES
