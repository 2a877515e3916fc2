"""observability.series adds to Prometheus series exactly as prometheus_client's own inc and observe do, in
multiprocess mode (what Gunicorn's workers run, read back from the files as /metrics reads them) and without."""
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from proxy.observability import series

BUCKETS = (0.01, 0.1, 1, 10)
AMOUNTS = (0, 0.01, 0.05, 0.1, 3, 10, 11, 250)  # on a bound, between, past the last


def _metrics():
    registry = CollectorRegistry()
    return (Counter("series_test_calls", "c", ["way"], registry=registry),
            Histogram("series_test_seconds", "h", ["way"], buckets=BUCKETS, registry=registry),
            Gauge("series_test_open", "g", multiprocess_mode="livesum", registry=registry), registry)


def _count_both_ways(counter, histogram, gauge):
    for amount in AMOUNTS:
        counter.labels("public").inc(amount)
        histogram.labels("public").observe(amount)
    adds = []
    for amount in AMOUNTS:
        adds.append((series.counter(counter.labels("fast")), amount))
        series.observation(series.histogram(histogram.labels("fast")), amount, adds)
    series.add(adds)
    gauge.inc()
    gauge.dec()
    gauge.inc()
    series.add([(series.counter(gauge), 1)])
    series.add([(series.counter(gauge), -1)])


def _by_way(text):
    """{sample line with its `way` label removed: value} for each way."""
    found = {"public": {}, "fast": {}}
    for line in text.decode().splitlines():
        for way in found:
            if f'way="{way}"' in line and "_created" not in line:  # a series' creation time differs
                found[way][line.replace(f'way="{way}"', "").rsplit(" ", 1)[0]] = line.rsplit(" ", 1)[1]
    return found


def test_without_multiprocess_mode_values_go_through_prometheus_client(monkeypatch):
    monkeypatch.setattr(series, "_LOCK", None)
    counter, histogram, gauge, registry = _metrics()
    _count_both_ways(counter, histogram, gauge)
    found = _by_way(generate_latest(registry))
    assert found["fast"] == found["public"] and len(found["fast"]) >= len(BUCKETS) + 4
    assert gauge._value.get() == 1


def test_in_multiprocess_mode_the_files_hold_what_prometheus_client_would_have_written(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    monkeypatch.setattr(series, "_LOCK", series._multiprocess_lock())
    assert series._LOCK is not None  # this prometheus_client is the one series knows
    counter, histogram, gauge, _ = _metrics()
    _count_both_ways(counter, histogram, gauge)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    text = generate_latest(registry)
    found = _by_way(text)
    assert found["fast"] == found["public"] and len(found["fast"]) >= len(BUCKETS) + 4
    assert found["fast"]['series_test_calls_total{}'] == str(float(sum(AMOUNTS)))
    assert b"series_test_open 1.0" in text


@pytest.mark.parametrize("amount,bucket", [(0.01, "0.01"), (0.0100001, "0.1"), (10, "10.0"), (10.5, "+Inf")])
def test_an_observation_lands_in_the_bucket_histogram_observe_picks(amount, bucket):
    _, histogram, _, registry = _metrics()
    adds = []
    series.observation(series.histogram(histogram.labels("fast")), amount, adds)
    series.add(adds)
    text = generate_latest(registry).decode()
    assert f'series_test_seconds_bucket{{le="{bucket}",way="fast"}} 1.0' in text
    bounds = [*map(str, map(float, BUCKETS)), "+Inf"]
    for bound in bounds[:bounds.index(bucket)]:
        assert f'series_test_seconds_bucket{{le="{bound}",way="fast"}} 0.0' in text
