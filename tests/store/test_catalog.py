"""Browse: published APIs (public ones for everyone, restricted ones for members),
search by name and tag, FREE / PAID / FREEMIUM labels, and an API's page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apimon.models import Membership, RestrictedAccess, Role
from pricing.rating import Pricing, PricingModel
from publisher import services as publisher_services
from publisher.models import LifecycleAction, Visibility
from tests.billing.test_meters import add_meter
from tests.helpers import parse
from tests.publisher.helpers import make_api, make_tier
from tests.store.conftest import flat, store_url

D = Decimal

OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Weather", "version": "1"},
    "paths": {
        "/forecast": {
            "get": {
                "summary": "City forecast",
                "parameters": [
                    {
                        "name": "city",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                        "example": "São Paulo",
                    },
                    {"name": "days", "in": "query", "schema": {"type": "integer"}},
                    {"name": "units", "in": "query", "required": True},
                ],
                "responses": {},
            }
        }
    },
}


@pytest.fixture
def catalog(world, shop):
    paid = make_tier(shop.org, "Pro", price=flat("9.00"))
    maps = make_api(
        shop.org,
        name="Maps",
        context="maps",
        tiers=[paid],
        publish=True,
        tags=["geo"],
        description="Tiles and geocoding.",
    )
    free_only = make_api(
        shop.org, name="Time", context="time", tiers=[shop.free], publish=True
    )
    secret = make_api(
        shop.org,
        name="Internal",
        context="internal",
        tiers=[shop.free],
        publish=True,
        visibility=Visibility.RESTRICTED,
    )
    draft = make_api(shop.org, name="Draft", context="draft", tiers=[shop.free])
    old = make_api(
        shop.org, name="Legacy", context="legacy", tiers=[shop.free], publish=True
    )
    publisher_services.api_transition(
        api=old, action=LifecycleAction.DEPRECATE, actor=None
    )
    return {
        "maps": maps,
        "time": free_only,
        "secret": secret,
        "draft": draft,
        "old": old,
    }


def approve(user) -> None:
    Membership.objects.filter(user=user, role=Role.SUBSCRIBER).update(
        restricted_access=RestrictedAccess.APPROVED
    )


def cards(html: str) -> str:
    return html.split('id="catalog"', 1)[1] if 'id="catalog"' in html else ""


def test_anonymous_visitors_see_published_public_apis_with_labels(
    client, shop, catalog
):
    html = cards(client.get(store_url(shop.org)).content.decode())
    for name in ("Weather API", "Maps", "Time"):
        assert name in html
    for name in ("Internal", "Draft", "Legacy"):
        assert name not in html
    # Weather: Free + Gold + Metered; Maps: only Pro; Time: only Free.
    assert html.count("FREEMIUM") == 1 and html.count(">PAID<") == 1
    assert html.count(">FREE<") == 1


def test_approved_subscribers_also_see_restricted_apis(
    world, shop, catalog, client_for
):
    html = cards(client_for(world.subscriber).get(store_url(shop.org)).content.decode())
    assert "Internal" not in html  # joining the store is not an approval
    approve(world.subscriber)
    html = cards(client_for(world.subscriber).get(store_url(shop.org)).content.decode())
    assert "Internal" in html and "approved subscribers" in html
    outsider = cards(
        client_for(world.outsider).get(store_url(shop.org)).content.decode()
    )
    assert "Internal" not in outsider and "Weather API" in outsider


def test_search_by_name_description_and_tag(client, shop, catalog):
    def found(**params):
        return cards(client.get(store_url(shop.org), params).content.decode())

    assert "Maps" in found(q="geocod") and "Weather API" not in found(q="geocod")
    assert "Weather API" in found(q="forecast") and "Maps" not in found(q="forecast")
    only_geo = found(tag="geo")
    assert "Maps" in only_geo and "Weather API" not in only_geo
    assert (
        "No API matches"
        in client.get(store_url(shop.org), {"q": "zzz"}).content.decode()
    )


def test_tag_chips_list_the_tags_of_visible_apis(client, shop, catalog):
    html = client.get(store_url(shop.org)).content.decode()
    for tag in ("forecast", "geo", "weather"):
        assert f">{tag}</a>" in html


def test_the_catalog_keeps_a_fixed_number_of_queries(
    client, shop, catalog, django_assert_max_num_queries
):
    with django_assert_max_num_queries(8):
        client.get(store_url(shop.org))


def update_api(shop, **fields) -> None:
    """Edit the shop's API as its publisher would (name, version, context kept)."""
    publisher_services.api_update(
        api=shop.api,
        actor=None,
        name=shop.api.name,
        version="v1",
        context="weather",
        backend_url=shop.api.backend_url,
        **fields,
    )


def test_the_api_page_has_docs_operations_pricing_and_the_gateway_url(
    client, shop, settings
):
    update_api(
        shop,
        documentation="# Weather\n\nCall **/forecast**.\n\n<script>alert(1)</script>",
        openapi_spec=OPENAPI,
        tags=["weather"],
    )
    html = client.get(store_url(shop.org, f"apis/{shop.api.pk}/")).content.decode()
    assert "<strong>/forecast</strong>" in html and "<script>alert" not in html
    assert "City forecast" in html and ">GET<" in html
    pricing = html.split('id="pricing"', 1)[1].split("</table>", 1)[0]
    assert "Free" in pricing and "1,000 requests per day" in pricing
    assert "5 requests per second" in pricing and "Refused (429)" in pricing
    assert (
        "$19.00 / month" in pricing and "100,000 requests per calendar month" in pricing
    )
    assert "Usage billed monthly" in pricing
    assert "Requests: $0.001 per request" in pricing
    assert "Not available yet" in pricing  # monetization is off
    gateway = f"{settings.SITE_URL}/gateway/{shop.org.slug}/weather/v1/"
    assert gateway in html and "curl -H" in html
    # The example call fills the first operation's required query parameters, so
    # it can be pasted as it is (an example value, else a <placeholder>).
    assert f'"{gateway}forecast?city=S%C3%A3o%20Paulo&amp;units=&lt;units&gt;"' in html
    assert "FREEMIUM" in html
    assert "Sign up to subscribe" in html


def _pro_price():
    return publisher_services.TierPrice.of_meters(
        currency="usd",
        fixed_fee=D("9"),
        meters=[
            publisher_services.MeterPriceSpec(
                meter="requests",
                pricing=Pricing(
                    PricingModel.FLAT_PLUS_OVERAGE,
                    "usd",
                    included_requests=10_000,
                    overage_price=D("0.50"),
                    overage_block_size=1_000,
                ),
            ),
            publisher_services.MeterPriceSpec(
                meter="tokens",
                pricing=Pricing(PricingModel.PER_UNIT, "usd", unit_price=D("0.00002")),
                quota_limit=1_000_000,
                quota_unit="day",
            ),
        ],
    )


def _offer(shop, name):
    tier = make_tier(shop.org, name, price=_pro_price())
    publisher_services.api_set_tiers(
        api=shop.api, tiers=[*shop.api.tiers.all(), tier], actor=None
    )


def test_the_pricing_table_lists_requests_as_a_meter_line_like_the_others(client, shop):
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    _offer(shop, "Pro")

    html = client.get(store_url(shop.org, f"apis/{shop.api.pk}/")).content.decode()

    row = html.split('id="pricing"', 1)[1].split("Pro</strong>", 1)[1]
    row = row.split("</tr>", 1)[0]
    assert "$9.00 / month, plus usage billed monthly" in row
    lines = [li.text() for li in parse(row).iter() if li.tag == "li"]
    assert lines == [
        "Requests: 10,000 requests included, then $0.50 per block of 1,000 requests",
        # per the tokens' display scale: $0.00002 a token is $0.02 per 1K
        "Tokens: $0.02 per 1K tokens · quota 1,000,000 tokens per day (hard)",
    ]


def test_an_api_without_a_meter_does_not_list_its_price(client, shop):
    """A tier prices tokens, but this API has no tokens meter (another API of the
    organization has): on this API the tier sells requests only."""
    other = make_api(shop.org, name="Writer", context="writer")
    add_meter(other, "tokens", "Tokens", "token", scale=1000)
    _offer(shop, "Pro")

    html = client.get(store_url(shop.org, f"apis/{shop.api.pk}/")).content.decode()

    row = html.split('id="pricing"', 1)[1].split("Pro</strong>", 1)[1]
    row = row.split("</tr>", 1)[0]
    lines = [li.text() for li in parse(row).iter() if li.tag == "li"]
    assert lines == [
        "Requests: 10,000 requests included, then $0.50 per block of 1,000 requests",
    ]


def test_the_pricing_tables_lines_cost_no_query_per_tier(client, shop):
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    path = store_url(shop.org, f"apis/{shop.api.pk}/")
    counts = []
    for name in ("Pro", "Pro 2", "Pro 3"):
        _offer(shop, name)  # a catalog change: the next page reads it afresh
        with CaptureQueriesContext(connection) as captured:
            assert name in client.get(path).content.decode()
        counts.append(len(captured))
    assert counts[0] == counts[1] == counts[2], counts


def test_paid_tiers_are_available_once_monetization_is_on(client, shop, monetized):
    html = client.get(store_url(shop.org, f"apis/{shop.api.pk}/")).content.decode()
    assert "Not available yet" not in html


def test_the_api_page_is_the_gateways_upgrade_link(shop):
    # gateway.proxy builds "/t/<org>/store/apis/<id>/" for its 429 answers.
    assert reverse("store:api-detail", args=[shop.org.slug, shop.api.pk]) == (
        f"/t/{shop.org.slug}/store/apis/{shop.api.pk}/"
    )


def test_restricted_draft_and_foreign_apis_are_404(
    world, client, shop, catalog, client_for
):
    secret, draft = catalog["secret"], catalog["draft"]
    assert client.get(store_url(shop.org, f"apis/{secret.pk}/")).status_code == 404
    outsider = client_for(world.outsider)
    assert outsider.get(store_url(shop.org, f"apis/{secret.pk}/")).status_code == 404
    # …even through the outsider's own organization
    assert (
        outsider.get(store_url(world.other_org, f"apis/{shop.api.pk}/")).status_code
        == 404
    )
    member = client_for(world.subscriber)
    assert member.get(store_url(shop.org, f"apis/{secret.pk}/")).status_code == 404
    approve(world.subscriber)
    assert member.get(store_url(shop.org, f"apis/{secret.pk}/")).status_code == 200
    assert member.get(store_url(shop.org, f"apis/{draft.pk}/")).status_code == 404


def test_a_signed_in_non_member_is_invited_to_join(world, shop, client_for):
    html = client_for(world.outsider).get(store_url(shop.org, f"apis/{shop.api.pk}/"))
    assert "Join as subscriber" in html.content.decode()


def test_a_member_without_applications_is_asked_to_create_one(world, shop, client_for):
    html = client_for(world.subscriber).get(store_url(shop.org, f"apis/{shop.api.pk}/"))
    html = html.content.decode()
    assert "Create an application" in html
    assert (
        f"applications/new/?next=/t/{shop.org.slug}/store/apis/{shop.api.pk}/" in html
    )


def test_with_a_gateway_host_the_api_page_shows_the_gateways_address(
    client, shop, settings
):
    settings.GATEWAY_URL = "https://gw.apimon.example"
    html = client.get(store_url(shop.org, f"apis/{shop.api.pk}/")).content.decode()
    assert f"https://gw.apimon.example/gateway/{shop.org.slug}/weather/v1/" in html
    assert f"{settings.SITE_URL}/gateway/" not in html


def test_the_curl_example_uses_a_get_operation_not_the_apis_root(
    client, shop, settings
):
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "Weather", "version": "v1"},
        "paths": {
            "/reports": {"post": {"responses": {"200": {"description": "ok"}}}},
            "/current": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
    }
    update_api(shop, openapi_spec=spec)
    html = client.get(store_url(shop.org, f"apis/{shop.api.pk}/")).content.decode()
    gateway = f"{settings.SITE_URL}/gateway/{shop.org.slug}/weather/v1/"
    assert f'"{gateway}current"' in html
    assert f'"{gateway}reports"' not in html and f'"{gateway}"' not in html


def test_without_an_openapi_document_the_curl_example_asks_for_a_path(
    client, shop, settings
):
    html = client.get(store_url(shop.org, f"apis/{shop.api.pk}/")).content.decode()
    gateway = f"{settings.SITE_URL}/gateway/{shop.org.slug}/weather/v1/"
    assert f'"{gateway}&lt;path&gt;"' in html
    assert f'"{gateway}"' not in html


@pytest.mark.parametrize("params", [{"q": "\x00"}, {"tag": "geo\x00"}])
def test_a_nul_byte_in_the_search_is_a_form_error_not_a_500(
    client, shop, catalog, params
):
    response = client.get(store_url(shop.org), params)

    assert response.status_code == 200
    assert "Null characters are not allowed." in response.content.decode()
    assert cards(response.content.decode()) == ""


def test_an_overlong_search_is_refused_with_its_limit(client, shop, catalog):
    response = client.get(store_url(shop.org), {"q": "weather" * 100})

    assert response.status_code == 200
    assert "at most 200 characters" in response.content.decode()


@pytest.mark.parametrize("wanted", ["²", "१२", "99999999999999999999999", "x"])
def test_a_tier_in_the_query_that_is_not_an_ascii_number_is_ignored(
    world, shop, client_for, wanted
):
    """Found by the fuzz tests: "²".isdigit() is true but int("²") raises."""
    from store import services

    services.application_create(
        organization=shop.org, owner=world.subscriber, name="Dashboard"
    )
    response = client_for(world.subscriber).get(
        store_url(shop.org, f"apis/{shop.api.pk}/"), {"tier": wanted}
    )

    assert response.status_code == 200
