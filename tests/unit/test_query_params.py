"""Query parameter parsing: defaults, bounds, and errors naming the parameter."""

import pytest
from aiohttp.test_utils import make_mocked_request

from services.api.params import MAX_PAGE, BadRequest, bool_param, choice_param, int_param, text_param


def request(query: str):
    return make_mocked_request("GET", f"/api/integrations/x/runs?{query}")


@pytest.mark.parametrize(("query", "expected"), [("", 50), ("limit=1", 1), ("limit=200", 200), ("limit=007", 7)])
def test_limit_accepts_its_inclusive_range_and_defaults_to_50(query, expected):
    assert int_param(request(query), "limit", 50, 1, 200) == expected


@pytest.mark.parametrize("value", ["0", "201", "-3", "ten", "1.5", "1_0", "%207", "%D9%A3", "9" * 30])
def test_limit_outside_the_range_is_refused_naming_it(value):
    with pytest.raises(BadRequest) as error:
        int_param(request(f"limit={value}"), "limit", 50, 1, 200)
    assert error.value.errors[0][0] == "limit" and "'limit' must be" in error.value.detail
    assert "between 1 and 200" in error.value.detail


@pytest.mark.parametrize("value", [str(MAX_PAGE + 1), str(2**63), "9" * 5000, "-" + "9" * 5000])
def test_a_page_number_beyond_the_maximum_is_refused_without_converting_it(value):
    with pytest.raises(BadRequest) as error:
        int_param(request(f"p={value}"), "p", 0, 0, MAX_PAGE)
    assert f"between 0 and {MAX_PAGE}" in error.value.detail and len(error.value.detail) < 200


def test_the_largest_page_number_fits_a_bigint_offset_at_the_largest_limit():
    assert int_param(request(f"p={MAX_PAGE}"), "p", 0, 0, MAX_PAGE) * 200 < 2**63


def test_a_nul_character_in_a_query_parameter_is_refused_naming_it():
    with pytest.raises(BadRequest, match="NUL") as error:
        text_param(request("team=a%00b"), "team")
    assert error.value.errors[0][0] == "team"


def test_booleans_and_choices():
    assert bool_param(request("enabled=TRUE"), "enabled") is True
    assert bool_param(request(""), "enabled") is None
    with pytest.raises(BadRequest):
        bool_param(request("enabled=yes"), "enabled")
    assert choice_param(request("status=FAILED"), "status", ["RUNNING", "FAILED"]) == "FAILED"
    with pytest.raises(BadRequest, match="one of RUNNING, FAILED"):
        choice_param(request("status=failed"), "status", ["RUNNING", "FAILED"])
