"""A careless operator's MODEL_PRICES: anything malformed stops start-up with a ConfigError naming the entry,
and nothing it accepts can make a request's cost overflow into a 500."""
import pytest
from hypothesis import given, settings, strategies as st

from config import PRICE_MAX, ConfigError, load_settings
from proxy.access import clients
from proxy.analytics.pricing import PriceError, PriceTable
from tests.conftest import MODELS
from tests.test_access import call

_pieces = st.sampled_from(["gemini-2.5-flash", "x", "=", "/", ";", ",", "1", "0.5", "1e308", "1e400", "nan", "inf",
                           "-1", "long", "batch", "flex", "priority", "input", " ", "\x00", "１", "_", "e", "."])


@settings(max_examples=400, deadline=None)
@given(text=st.lists(_pieces, max_size=14).map("".join) | st.text(max_size=40))
def test_any_model_prices_parse_or_stop_naming_the_entry(text):
    try:
        prices = load_settings({"MODEL_PRICES": text})["MODEL_PRICES"]
    except ConfigError as exc:
        assert str(exc).startswith("MODEL_PRICES")
        return
    try:
        PriceTable(prices)
    except PriceError as exc:  # the app factory turns it into a ConfigError
        assert str(exc).startswith("MODEL_PRICES")


@pytest.mark.parametrize("text", [f"{MODELS[0]}=1e308/1e308", f"{MODELS[0]}=1/2;batch=1e300", "x=1_0/2",
                                  f"{MODELS[0]}=1/2;long=1e300/1", f"{MODELS[0]}=priority=1e300",
                                  "a\x00b=1/2", "x y=1/2", "x=１/２", f"{MODELS[0]}={PRICE_MAX * 10}/1"])
def test_absurd_prices_and_names_stop_the_start(text):
    with pytest.raises(ConfigError, match="MODEL_PRICES"):
        load_settings({"MODEL_PRICES": text})


def test_a_price_at_the_ceiling_costs_a_request_without_overflowing(make_app):
    """The dearest price accepted, on a budgeted key: an answer or a budget refusal, never a 500."""
    prices = load_settings({"MODEL_PRICES": ",".join(f"{m}={PRICE_MAX}/{PRICE_MAX}" for m in MODELS)})
    app = make_app(MODEL_PRICES=prices["MODEL_PRICES"])
    with app.app_context():
        _, secret = clients.create("dear", budget_usd=1e9, budget_period="day")
    for api in ("generate", "native", "compat"):
        assert call(app.test_client(), api, secret).status_code in (200, 429)


def test_a_mapping_of_prices_is_held_to_the_same_ceiling():
    with pytest.raises(PriceError, match="MODEL_PRICES: x"):
        PriceTable({"x": {"input": 1e308, "output": 1.0}})
