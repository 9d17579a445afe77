"""The service's URLs from the environment are checked as `account add` checks an
account's: an http(s) URL with a host, or the start stops naming the variable."""

from __future__ import annotations

import pytest

from router.config import ConfigError, load_config

ENV = {"MEGAPLAN_USERNAME": "u", "MEGAPLAN_PASSWORD": "p"}


@pytest.mark.parametrize("variable", ["MANGO_API_URL", "MEGAPLAN_URL"])
@pytest.mark.parametrize("url", ["crm.example.com", "ftp://crm.example.com",
                                 "HTTPS://crm.example.com", "https://"])
def test_a_url_that_is_not_http_stops_the_start_naming_the_variable(
    variable: str, url: str,
) -> None:
    with pytest.raises(ConfigError, match=f"{variable}.*must be an http\\(s\\) URL"):
        load_config(environ={**ENV, variable: url}, env_file=None)


def test_an_http_url_is_taken_as_it_is() -> None:
    config = load_config(environ={**ENV, "MEGAPLAN_URL": "https://crm.example.com/"},
                         env_file=None)
    assert config.megaplan_url == "https://crm.example.com/"
