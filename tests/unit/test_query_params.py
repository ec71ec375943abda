"""Query parameter parsing: defaults, bounds, and errors naming the parameter."""

import pytest
from aiohttp.test_utils import make_mocked_request

from services.api.params import BadRequest, bool_param, choice_param, int_param


def request(query: str):
    return make_mocked_request("GET", f"/api/integrations/x/runs?{query}")


@pytest.mark.parametrize(("query", "expected"), [("", 50), ("limit=1", 1), ("limit=200", 200)])
def test_limit_accepts_its_inclusive_range_and_defaults_to_50(query, expected):
    assert int_param(request(query), "limit", 50, 1, 200) == expected


@pytest.mark.parametrize("value", ["0", "201", "-3", "ten", "1.5"])
def test_limit_outside_the_range_is_refused_naming_it(value):
    with pytest.raises(BadRequest) as error:
        int_param(request(f"limit={value}"), "limit", 50, 1, 200)
    assert error.value.field == "limit" and "'limit'" in error.value.detail


def test_booleans_and_choices():
    assert bool_param(request("enabled=TRUE"), "enabled") is True
    assert bool_param(request(""), "enabled") is None
    with pytest.raises(BadRequest):
        bool_param(request("enabled=yes"), "enabled")
    assert choice_param(request("status=FAILED"), "status", ["RUNNING", "FAILED"]) == "FAILED"
    with pytest.raises(BadRequest, match="one of RUNNING, FAILED"):
        choice_param(request("status=failed"), "status", ["RUNNING", "FAILED"])
