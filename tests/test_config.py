"""Settings: defaults, parsing, and a bad value stopping start-up with its name."""

import pytest

from config import ConfigError, load_settings
from tests import processes


def test_defaults():
    settings = load_settings({})
    assert settings["GEMINI_API_KEYS"] == []
    assert settings["GEMINI_MODELS"] == ["gemini-2.5-flash", "gemini-2.5-flash-lite"]
    assert settings["GEMINI_BASE_URL"] == "https://generativelanguage.googleapis.com"
    assert settings["REQUEST_DEADLINE_SECONDS"] == 30.0
    assert settings["SQLALCHEMY_DATABASE_URI"] is None


def test_key_pool_and_chain_are_comma_separated():
    settings = load_settings({"GEMINI_API_KEY": " k1 , k2,,k3 ", "GEMINI_MODELS": "a, b",
                              "GEMINI_BASE_URL": "http://127.0.0.1:9/"})
    assert settings["GEMINI_API_KEYS"] == ["k1", "k2", "k3"]
    assert settings["GEMINI_MODELS"] == ["a", "b"]
    assert settings["GEMINI_BASE_URL"] == "http://127.0.0.1:9"


@pytest.mark.parametrize("given,used", [
    ("postgresql://u:p@db:5432/proxy", "postgresql+psycopg://u:p@db:5432/proxy"),
    ("postgres://u@db/proxy", "postgresql+psycopg://u@db/proxy"),
    ("postgresql+psycopg://u@db/proxy", "postgresql+psycopg://u@db/proxy"),
    ("sqlite:////data/proxy.db", "sqlite:////data/proxy.db"),
])
def test_a_postgresql_url_uses_the_bundled_gevent_friendly_driver(given, used):
    assert load_settings({"DATABASE_URL": given})["SQLALCHEMY_DATABASE_URI"] == used


@pytest.mark.parametrize("name,value", [
    ("PORT", "eighty"), ("PORT", "70000"), ("REQUEST_DEADLINE_SECONDS", "0"), ("RETRY_MAX_ATTEMPTS", "2.5"),
    ("GEMINI_BASE_URL", "ftp://example"), ("GEMINI_BASE_URL", "not a url"), ("LOG_LEVEL", "LOUD"),
    ("FALLBACK_ENABLED", "maybe"), ("GEMINI_MODELS", " , "), ("UPSTREAM_TIMEOUT_SECONDS", "60"),
    ("QUOTA_STORAGE_URL", "memcached://cache:11211"), ("QUOTA_HOLD_SECONDS", "0"),
    ("BODY_READ_SECONDS", "0"), ("BODY_READ_SECONDS", "soon"),
])
def test_bad_values_are_refused_by_name(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


@pytest.mark.e2e
def test_gunicorn_refuses_to_start_on_a_bad_setting(tmp_path):
    process = processes.start_gunicorn(str(tmp_path), RETRY_MAX_ATTEMPTS="lots", WEB_CONCURRENCY=1,
                                       DATABASE_URL=f"sqlite:///{tmp_path}/p.db")
    assert "RETRY_MAX_ATTEMPTS='lots' is not a valid int" in processes.refusal_of(process)


def test_model_prices_take_a_cached_price_or_none():
    prices = load_settings({"MODEL_PRICES": "a=1/2, b=1/2/0.25"})["MODEL_PRICES"]
    assert prices == {"a": {"input": 1.0, "output": 2.0}, "b": {"input": 1.0, "output": 2.0, "cached": 0.25}}


@pytest.mark.parametrize("value", ["a=1", "a=1/2/3/4", "a=1/-2", "a=nan/1", "=1/2", "a=1/x"])
def test_model_prices_that_are_not_prices_are_refused(value):
    with pytest.raises(ConfigError, match="MODEL_PRICES"):
        load_settings({"MODEL_PRICES": value})
