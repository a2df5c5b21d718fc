"""An API's meters in the publisher console: the built-in `requests` meter, meters a
publisher defines (create, edit, delete, validation, tenancy), and the migration
that gave existing APIs and usage their `requests` meter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from publisher import meters
from publisher.models import Meter, MeterSource
from tests.helpers import field_error
from tests.publisher.helpers import make_api

GOOD = {
    "key": "tokens",
    "display_name": "Tokens",
    "unit_label": "token",
    "display_scale": "1000",
    "source": MeterSource.RESPONSE,
    "operations": "",
}


def url(api, rest=""):
    return f"/t/{api.organization.slug}/publisher/apis/{api.pk}/meters/{rest}"


@pytest.mark.django_db
def test_a_new_api_has_the_builtin_requests_meter(world):
    api = make_api(world.org)

    (meter,) = api.meters.all()
    assert (meter.key, meter.source, meter.display_scale) == ("requests", "requests", 1)
    assert [m.key for m in meters.meters_of(api)] == ["requests"]


@pytest.mark.django_db
def test_a_publisher_creates_a_response_reported_meter(world, client_for):
    api = make_api(world.org)

    response = client_for(world.publisher).post(url(api, "new/"), GOOD)

    assert response.status_code == 302
    meter = api.meters.get(key="tokens")
    assert (meter.display_name, meter.unit_label, meter.display_scale) == (
        "Tokens",
        "token",
        1000,
    )
    assert meter.source == MeterSource.RESPONSE
    page = client_for(world.publisher).get(
        f"/t/{world.org.slug}/publisher/apis/{api.pk}/"
    )
    assert "Tokens" in page.content.decode()
    assert [m.key for m in meters.meters_of(api)] == ["requests", "tokens"]


@pytest.mark.django_db
def test_weighted_operations_are_parsed_from_lines(world, client_for):
    api = make_api(world.org)
    data = {
        **GOOD,
        "key": "credits",
        "display_name": "Credits",
        "unit_label": "credit",
        "display_scale": "1",
        "source": MeterSource.OPERATIONS,
        "operations": "post /search 5\n# free\nGET /status 0\n\nGET /items/{id} 2",
    }

    response = client_for(world.publisher).post(url(api, "new/"), data)

    assert response.status_code == 302
    assert api.meters.get(key="credits").operations == [
        {"method": "POST", "path": "/search", "units": 5},
        {"method": "GET", "path": "/status", "units": 0},
        {"method": "GET", "path": "/items/{id}", "units": 2},
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("key", "Tokens", "lowercase letters"),
        ("key", "requests", "built-in requests meter"),
        ("key", "to_kens", "lowercase letters"),
        ("key", "9tokens", "lowercase letters"),
        ("display_name", "", "This field is required."),
        ("unit_label", "", "This field is required."),
        ("display_name", "Tok\nens", "line"),
        ("display_scale", "0", "Select a valid choice."),
        ("display_scale", "3", "Select a valid choice."),
        ("display_scale", "abc", "Select a valid choice."),
        ("source", "requests", "Select a valid choice."),
        ("operations", "POST /search", "Line 1: write METHOD /path units"),
        ("operations", "FETCH /search 5", "Line 1: FETCH is not a method"),
        ("operations", "GET search 5", "Line 1: A path starts with /"),
        ("operations", "GET /a 1\nGET /a/ 2", "Line 2: GET /a/ is listed twice."),
        ("operations", "GET /{a}/b{c} 1", "neither a literal segment"),
        ("operations", "GET /a -1", "Units are a whole number"),
        ("operations", "GET /a ١", "Units are a whole number"),
    ],
)
@pytest.mark.django_db
def test_the_meter_form_shows_each_error_next_to_its_field(
    world, client_for, field, value, message
):
    api = make_api(world.org)
    data = {**GOOD, "source": MeterSource.OPERATIONS, field: value}

    response = client_for(world.publisher).post(url(api, "new/"), data)

    assert response.status_code == 200
    assert message in field_error(response.content, field)
    assert api.meters.count() == 1  # only requests


@pytest.mark.django_db
def test_operations_belong_to_weighted_meters_only(world, client_for):
    api = make_api(world.org)
    data = {**GOOD, "operations": "POST /search 5"}

    response = client_for(world.publisher).post(url(api, "new/"), data)

    assert "Only a meter of weighted operations" in field_error(
        response.content, "operations"
    )


@pytest.mark.django_db
def test_a_key_is_unique_per_api(world, client_for):
    api = make_api(world.org)
    other = make_api(world.org, context="other")
    client = client_for(world.publisher)
    client.post(url(other, "new/"), GOOD)  # the same key on another API is fine
    client.post(url(api, "new/"), GOOD)

    response = client.post(url(api, "new/"), GOOD)

    assert "already has a meter “tokens”" in field_error(response.content, "key")
    assert Meter.objects.filter(key="tokens").count() == 2


@pytest.mark.django_db
def test_a_publisher_edits_a_meter_but_not_its_key(world, client_for):
    api = make_api(world.org)
    client = client_for(world.publisher)
    client.post(url(api, "new/"), GOOD)
    meter = api.meters.get(key="tokens")

    response = client.post(
        url(api, f"{meter.pk}/"),
        {**GOOD, "key": "renamed", "display_name": "LLM tokens", "display_scale": "1"},
    )

    assert response.status_code == 302
    meter.refresh_from_db()
    assert (meter.key, meter.display_name, meter.display_scale) == (
        "tokens",
        "LLM tokens",
        1,
    )


@pytest.mark.django_db
def test_a_publisher_deletes_a_meter(world, client_for):
    api = make_api(world.org)
    client = client_for(world.publisher)
    client.post(url(api, "new/"), GOOD)
    meter = api.meters.get(key="tokens")

    response = client.post(url(api, f"{meter.pk}/"), {"delete": "1"})

    assert response.status_code == 302
    assert list(api.meters.values_list("key", flat=True)) == ["requests"]


@pytest.mark.django_db
def test_the_builtin_meter_has_no_edit_page_and_cannot_be_changed(world, client_for):
    api = make_api(world.org)
    builtin = api.meters.get()

    assert (
        client_for(world.publisher).get(url(api, f"{builtin.pk}/")).status_code == 404
    )
    with pytest.raises(Exception, match="cannot be deleted"):
        meters.meter_delete(meter=builtin, actor=None)


@pytest.mark.django_db
def test_subscribers_get_403_and_outsiders_404_on_meter_pages(world, client_for):
    api = make_api(world.org)
    meter = meters.meter_create(
        api=api,
        actor=None,
        key="tokens",
        display_name="Tokens",
        unit_label="token",
        source=MeterSource.RESPONSE,
    )
    theirs = make_api(world.other_org)

    for user, status in ((world.subscriber, 403), (world.outsider, 404)):
        client = client_for(user)
        assert client.get(url(api, "new/")).status_code == status
        assert (
            client.post(url(api, f"{meter.pk}/"), {"delete": "1"}).status_code == status
        )
    # An outsider's own API id with our meter id: still not found.
    client = client_for(world.outsider)
    assert client.get(url(theirs, f"{meter.pk}/")).status_code == 404
    assert Meter.objects.filter(pk=meter.pk).exists()


# -- the migration --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_existing_apis_and_usage_the_requests_meter(world):
    """Usage rows and APIs written before meters existed keep every request."""
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    older = {
        "publisher": "0004_api_backend_refusal",
        "gateway": "0007_alter_flushbatch_options",
    }
    before = [(app, older.get(app, name)) for app, name in leaves]
    try:
        executor.migrate(before)
        _check_the_migration(world, executor, before)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


def _check_the_migration(world, executor, before) -> None:
    old = executor.loader.project_state(before).apps
    Api = old.get_model("publisher", "Api")
    Tier = old.get_model("publisher", "Tier")
    TierVersion = old.get_model("publisher", "TierVersion")
    Subscription = old.get_model("store", "Subscription")
    Application = old.get_model("store", "Application")
    UsageRecord = old.get_model("gateway", "UsageRecord")
    api = Api.objects.create(
        organization_id=world.org.pk,
        name="Old",
        version="v1",
        context="old",
        backend_url="https://backend.example.com/",
    )
    tier = Tier.objects.create(organization_id=world.org.pk, name="Old tier")
    version = TierVersion.objects.create(tier=tier, number=1)
    app = Application.objects.create(
        organization_id=world.org.pk, owner_id=world.subscriber.pk, name="app"
    )
    sub = Subscription.objects.create(
        organization_id=world.org.pk,
        application=app,
        api=api,
        tier=tier,
        tier_version=version,
        subscriber_id=world.subscriber.pk,
    )
    hours = [datetime(2027, 1, 1, h, tzinfo=UTC) for h in range(3)]
    for hour, count in zip(hours, (5, 0, 1_234_567_890_123), strict=True):
        UsageRecord.objects.create(
            organization_id=world.org.pk, subscription=sub, hour=hour, count=count
        )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    after = executor.loader.graph.leaf_nodes()
    executor.migrate(after)
    new = executor.loader.project_state(after).apps

    rows = new.get_model("gateway", "UsageRecord").objects.filter(
        subscription_id=sub.pk
    )
    assert sorted(rows.values_list("hour", "meter", "count")) == [
        (hours[0], "requests", 5),
        (hours[1], "requests", 0),
        (hours[2], "requests", 1_234_567_890_123),
    ]
    (meter,) = new.get_model("publisher", "Meter").objects.filter(api_id=api.pk)
    assert (meter.key, meter.source, meter.unit_label) == (
        "requests",
        "requests",
        "request",
    )
