"""APIs in the publisher console: create, edit, validation, search, access."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from publisher import services
from publisher.models import Api, ApiState, ApiStateChange, Tag, Visibility
from tests.helpers import field_error
from tests.publisher.helpers import make_api, make_tier

GOOD = {
    "name": "Weather API",
    "version": "v1",
    "context": "weather",
    "backend_url": "https://backend.example.com/weather",
    "description": "Forecasts.",
    "documentation": "# Weather\n\nCall `/current`.",
    "tags": "Weather, forecast, weather",
    "visibility": "PUBLIC",
}


def url(org, rest=""):
    return f"/t/{org.slug}/publisher/apis/{rest}"


@pytest.mark.django_db
def test_a_publisher_creates_an_api_in_state_created_with_its_tags(world, client_for):
    response = client_for(world.publisher).post(url(world.org, "new/"), GOOD)

    api = Api.objects.get(organization=world.org)
    assert response.status_code == 302
    assert response["Location"] == url(world.org, f"{api.pk}/tiers/")
    assert (api.name, api.version, api.context, api.state) == (
        "Weather API",
        "v1",
        "weather",
        ApiState.CREATED,
    )
    assert sorted(t.name for t in api.tags.all()) == ["forecast", "weather"]
    assert api.state_changes.get().to_state == ApiState.CREATED


@pytest.mark.django_db
def test_the_owner_may_create_apis_too(world, client_for):
    response = client_for(world.owner).post(url(world.org, "new/"), GOOD)
    assert response.status_code == 302
    assert Api.objects.filter(organization=world.org).count() == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "This field is required."),
        ("version", "1.2.3.4", "Use a version like"),
        ("version", "version1", "Use a version like"),
        ("version", "v", "Use a version like"),
        ("context", "has space", "Enter a valid “slug”"),
        ("context", "", "This field is required."),
        ("backend_url", "ftp://files.example.com/", "http:// or https://"),
        ("backend_url", "javascript:alert(1)", "http:// or https://"),
        ("backend_url", "backend.example.com", "http:// or https://"),
        ("backend_url", "http://", "http:// or https://"),
        ("visibility", "SECRET", "Select a valid choice"),
    ],
)
@pytest.mark.django_db
def test_a_bad_api_form_shows_the_error_next_to_the_field_and_writes_nothing(
    world, client_for, field, value, message
):
    response = client_for(world.publisher).post(
        url(world.org, "new/"), {**GOOD, field: value}
    )

    assert response.status_code == 200
    assert message in str(response.context["form"].errors[field])
    assert message in field_error(response.content, field)
    assert Api.objects.count() == 0
    assert Tag.objects.count() == 0


@pytest.mark.parametrize("version", ["v1", "v2.1", "1.0.0", "2"])
@pytest.mark.django_db
def test_it_accepts_the_documented_version_formats(world, client_for, version):
    client_for(world.publisher).post(
        url(world.org, "new/"), {**GOOD, "version": version}
    )
    assert Api.objects.get().version == version


@pytest.mark.django_db
def test_the_context_is_unique_per_organization_and_version(world, client_for):
    make_api(world.org, context="weather", version="v1")
    client = client_for(world.publisher)

    taken = client.post(url(world.org, "new/"), GOOD)
    assert "already uses /weather/v1/" in str(taken.context["form"].errors["context"])
    assert "already uses /weather/v1/" in field_error(taken.content, "context")
    assert Api.objects.filter(organization=world.org).count() == 1

    client.post(url(world.org, "new/"), {**GOOD, "version": "v2"})
    assert Api.objects.filter(organization=world.org).count() == 2


@pytest.mark.django_db
def test_another_organization_may_use_the_same_context(world):
    make_api(world.org, context="weather")
    make_api(world.other_org, context="weather")
    assert Api.objects.filter(context="weather", version="v1").count() == 2


@pytest.mark.django_db
def test_the_service_relies_on_the_database_constraint_too(world, monkeypatch):
    make_api(world.org, context="weather")
    # Skip the service's own look-up, as a concurrent request would.
    monkeypatch.setattr(services, "_check_api", lambda **kwargs: None)
    with pytest.raises(ValidationError) as exc:
        make_api(world.org, context="weather")
    assert "context" in exc.value.message_dict
    assert Api.objects.count() == 1


@pytest.mark.django_db
def test_a_publisher_edits_an_api(world, client_for):
    api = make_api(world.org, tags=["old"])
    response = client_for(world.publisher).post(
        url(world.org, f"{api.pk}/edit/"),
        {**GOOD, "name": "Weather v1", "tags": "new", "visibility": "RESTRICTED"},
    )
    assert response.status_code == 302
    api.refresh_from_db()
    assert api.name == "Weather v1"
    assert api.visibility == Visibility.RESTRICTED
    assert [t.name for t in api.tags.all()] == ["new"]


@pytest.mark.django_db
def test_the_edit_form_starts_with_the_current_values(world, client_for):
    api = make_api(world.org, tags=["weather", "forecast"])
    response = client_for(world.publisher).get(url(world.org, f"{api.pk}/edit/"))
    assert response.context["form"]["tags"].value() in (
        "forecast, weather",
        "weather, forecast",
    )
    assert response.context["form"]["context"].value() == "weather"


@pytest.mark.django_db
def test_context_and_version_are_fixed_once_published(world, client_for):
    tier = make_tier(world.org)
    api = make_api(world.org, tiers=[tier], publish=True)
    client_for(world.publisher).post(
        url(world.org, f"{api.pk}/edit/"),
        {**GOOD, "name": "Renamed", "context": "other", "version": "v9"},
    )
    api.refresh_from_db()
    assert (api.name, api.context, api.version) == ("Renamed", "weather", "v1")
    with pytest.raises(ValidationError):
        services.api_update(
            api=api, actor=None, **{**GOOD, "context": "other", "tags": []}
        )


@pytest.mark.django_db
def test_the_list_searches_name_description_and_tags_and_filters_by_state(
    world, client_for
):
    tier = make_tier(world.org)
    make_api(world.org, name="Weather API", context="weather", tags=["forecast"])
    make_api(
        world.org,
        name="Quotes API",
        context="quotes",
        description="Famous sayings",
        tiers=[tier],
        publish=True,
    )
    make_api(world.other_org, name="Globex Weather", context="weather")
    client = client_for(world.publisher)

    def names(query):
        response = client.get(url(world.org) + query)
        assert response.status_code == 200
        return sorted(a.name for a in response.context["apis"])

    assert names("") == ["Quotes API", "Weather API"]
    assert names("?q=forecast") == ["Weather API"]
    assert names("?q=SAYINGS") == ["Quotes API"]
    assert names("?q=weather") == ["Weather API"]
    assert names("?state=PUBLISHED") == ["Quotes API"]
    assert names("?state=CREATED&q=quotes") == []


@pytest.mark.django_db
def test_the_api_list_has_a_flat_query_count(
    world, client_for, django_assert_max_num_queries
):
    client = client_for(world.publisher)
    make_api(world.org, context="a", tags=["x", "y"])
    with django_assert_max_num_queries(12) as few:
        client.get(url(world.org))
    for i in range(6):
        make_api(world.org, context=f"c{i}", tags=[f"t{i}"])
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(url(world.org))


@pytest.mark.django_db
def test_a_subscriber_gets_403_on_the_api_pages(world, client_for):
    api = make_api(world.org)
    client = client_for(world.subscriber)
    for path in ("", "new/", f"{api.pk}/", f"{api.pk}/edit/", f"{api.pk}/tiers/"):
        assert client.get(url(world.org, path)).status_code == 403
    assert client.post(url(world.org, "new/"), GOOD).status_code == 403
    assert Api.objects.count() == 1


@pytest.mark.django_db
def test_an_outsider_gets_404_on_the_api_pages(world, client_for):
    api = make_api(world.org)
    client = client_for(world.outsider)
    for path in ("", "new/", f"{api.pk}/", f"{api.pk}/edit/"):
        assert client.get(url(world.org, path)).status_code == 404


@pytest.mark.django_db
def test_another_organizations_api_is_404_even_for_a_publisher(world, client_for):
    theirs = make_api(world.other_org, name="Globex API")
    client = client_for(world.publisher)
    for path in (f"{theirs.pk}/", f"{theirs.pk}/edit/", f"{theirs.pk}/tiers/"):
        assert client.get(url(world.org, path)).status_code == 404
    response = client.post(
        url(world.org, f"{theirs.pk}/edit/"), {**GOOD, "name": "Hijacked"}
    )
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Globex API"


@pytest.mark.django_db
def test_the_detail_page_shows_the_api(world, client_for):
    tier = make_tier(world.org, name="Gold")
    api = make_api(world.org, tiers=[tier], tags=["forecast"])
    page = (
        client_for(world.publisher).get(url(world.org, f"{api.pk}/")).content.decode()
    )
    assert "/gateway/acme/weather/v1/" in page
    assert "Gold" in page
    assert "forecast" in page
    assert ApiStateChange.objects.filter(api=api).count() == 1


def test_the_context_hint_shows_the_gateway_path_pattern(world, client_for):
    html = client_for(world.publisher).get(url(world.org, "new/")).content.decode()
    assert (
        "/gateway/&lt;org&gt;/<b>&lt;context&gt;</b>/&lt;version&gt;/: letters" in html
    )


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["?q=%00", "?q=a%00b&state=CREATED", "?state=%00"])
def test_a_nul_byte_in_the_api_search_is_a_form_error_not_a_500(
    world, client_for, query
):
    make_api(world.org, name="Weather API", context="weather")

    response = client_for(world.publisher).get(url(world.org) + query)

    assert response.status_code == 200
    html = response.content.decode()
    if "q=" in query:
        assert "Null characters are not allowed." in html
        assert list(response.context["apis"]) == []
    else:  # an unknown state is ignored, as before
        assert [a.name for a in response.context["apis"]] == ["Weather API"]
