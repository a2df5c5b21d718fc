"""API documentation: Markdown rendered to HTML that cannot run script."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.template import Context, Template

from publisher.markdown import render_markdown
from tests.publisher.helpers import make_api

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="java&#x09;script:alert(1)">click</a>',
    '<iframe src="https://evil.example"></iframe>',
    "<svg onload=alert(1)><circle/></svg>",
    '<p onclick="alert(1)" style="position:fixed">x</p>',
    "<style>body{display:none}</style>",
    '<form action="https://evil.example"><input name=password></form>',
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '![x](x "title" onerror=alert(1))',
    "<object data=x></object><embed src=x>",
    '<math><mtext><table><mglyph><style><img src=x onerror="alert(1)">',
    "<details open ontoggle=alert(1)>",
    "`<script>` in code is text",
]


ALLOWED_TAGS = {"p", "a", "img", "code", "pre", "em", "strong", "table", "details"}


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> list[tuple[str, dict[str, str | None]]]:
    collect = Collect()
    collect.feed(html)
    return collect.tags


@pytest.mark.parametrize("text", HOSTILE)
def test_no_script_or_handler_gets_through(text):
    html = str(render_markdown(text))
    for tag, attrs in parse(html):
        assert tag in ALLOWED_TAGS, (text, html)
        assert not [name for name in attrs if name.startswith("on")], (text, html)
        assert "style" not in attrs, (text, html)
        for name in ("href", "src"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("javascript:", "data:", "vbscript:")), html
        if tag == "a":
            assert attrs.get("rel") == "noopener noreferrer"
    assert "<script" not in html.lower()


def test_code_shows_markup_as_text():
    assert "&lt;script&gt;" in str(render_markdown("`<script>` in code is text"))


def test_markdown_still_renders():
    text = (
        "# Title\n\n**bold** and [a link](https://example.com/docs)\n\n"
        "```bash\ncurl -H 'X-API-Key: k' https://x\n```\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    html = str(render_markdown(text))
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert (
        '<a href="https://example.com/docs" rel="noopener noreferrer">a link</a>'
        in html
    )
    assert "<pre><code>curl -H 'X-API-Key: k' https://x\n</code></pre>" in html.replace(
        "&#39;", "'"
    )
    assert "<td>1</td>" in html


def test_relative_and_mailto_links_are_kept():
    html = str(render_markdown("[docs](/docs) [mail](mailto:a@b.test)"))
    assert 'href="/docs"' in html and 'href="mailto:a@b.test"' in html


def test_empty_documentation_is_empty():
    assert render_markdown("") == "" and render_markdown(None) == ""


def test_the_template_filter_renders_safely():
    template = Template("{% load publisher_tags %}{{ doc|markdown }}")
    html = template.render(Context({"doc": "*hi* <script>x()</script>"}))
    assert "<em>hi</em>" in html and "<script" not in html


@pytest.mark.django_db
def test_the_api_page_shows_sanitized_documentation(world, client_for):
    api = make_api(
        world.org, documentation="## Usage\n\n<img src=x onerror=alert(1)> ok"
    )
    page = client_for(world.publisher).get(f"/t/acme/publisher/apis/{api.pk}/")
    html = page.content.decode()
    assert "<h2>Usage</h2>" in html
    assert "onerror" not in html


DEEP_LIST = "- " * 2000 + "deep"


@pytest.mark.django_db
def test_documentation_nested_too_deeply_shows_as_text_not_a_500(world, client_for):
    # Saved before the form refused it (or through the admin).
    api = make_api(world.org, documentation=DEEP_LIST)

    page = client_for(world.publisher).get(f"/t/acme/publisher/apis/{api.pk}/")

    assert page.status_code == 200
    assert "deep</pre>" in page.content.decode()


@pytest.mark.django_db
def test_the_api_form_refuses_documentation_nested_too_deeply(world, client_for):
    from publisher.models import Api
    from tests.helpers import field_error
    from tests.publisher.test_apis import GOOD

    response = client_for(world.publisher).post(
        "/t/acme/publisher/apis/new/", {**GOOD, "documentation": DEEP_LIST}
    )

    assert response.status_code == 200
    assert "nests lists or quotes too deeply" in field_error(
        response.content, "documentation"
    )
    assert not Api.objects.exists()
