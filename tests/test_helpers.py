"""tests/helpers.py attributes an error to the block it is rendered in, and only that."""

import pytest

from tests.helpers import by_id, field_error, input_cell_error, submitted_values

PAGE = """<!DOCTYPE html><form>
<div class="field has-error" id="field-name"><label for="id_name">Name</label>
  <input id="id_name" name="name"><ul class="errorlist"><li>This field is required.</li></ul>
</div>
<div class="field" id="field-version"><input name="version" value="v1"></div>
<div id="band-table"><ul class="errorlist nonfield"><li>Add at least one band.</li></ul>
  <table><tr class="band-row">
    <td class="field has-error"><input name="bands-0-up_to"><ul class="errorlist"><li>Must be &gt; 100</li></ul></td>
    <td><input name="bands-0-unit_price"/></td>
  </tr></table>
</div></form>"""


def test_errors_belong_to_the_block_they_are_rendered_in():
    assert field_error(PAGE, "name") == "This field is required."
    assert field_error(PAGE, "version") == ""
    assert input_cell_error(PAGE, "bands-0-up_to") == "Must be > 100"
    assert input_cell_error(PAGE, "bands-0-unit_price") == ""
    assert "Add at least one band." in by_id(PAGE, "band-table").errors()


def test_a_missing_block_is_an_assertion_error():
    with pytest.raises(AssertionError, match='id="field-nope"'):
        field_error(PAGE, "nope")
    with pytest.raises(AssertionError, match="bands-9-up_to"):
        input_cell_error(PAGE, "bands-9-up_to")


def test_submitted_values_are_what_a_browser_posts_unchanged():
    page = """<form id="f"><input name="a" value="1"><input name="b">
    <input type="checkbox" name="c" checked><input type="checkbox" name="d">
    <input type="radio" name="e" value="x"><input type="radio" name="e" value="y" checked>
    <select name="s"><option value="p">P</option><option value="q" selected>Q</option></select>
    <select name="t"><option value="first">1</option></select>
    <textarea name="u">
100 1
* 2</textarea><button name="go">Go</button></form><input name="outside" value="z">"""
    assert submitted_values(page, "f") == {
        "a": "1",
        "b": "",
        "c": "on",
        "e": "y",
        "s": "q",
        "t": "first",
        "u": "100 1\n* 2",
    }
