"""observability.series against prometheus_client: an odd amount (NaN, infinities, negatives, a bound
exactly) lands in the bucket Histogram.observe puts it in."""
import math

import pytest
from prometheus_client import CollectorRegistry, Histogram

from proxy.observability import series

BUCKETS = (0.1, 1.0, 10.0)


def _buckets(child):
    return [bucket.get() for bucket in child._buckets], child._sum.get()


@pytest.mark.parametrize("amount", [
    math.nan, math.inf, -math.inf, -1.0, 0.0, 0.1, 1.0, 10.0, 10.000001, 1e308, 5e-324])
def test_an_observation_lands_where_prometheus_client_puts_it(amount):
    ours = Histogram("ours", "x", ["a"], buckets=BUCKETS, registry=CollectorRegistry()).labels("a")
    theirs = Histogram("theirs", "x", ["a"], buckets=BUCKETS, registry=CollectorRegistry()).labels("a")
    adds = []
    series.observation(series.histogram(ours), amount, adds)
    series.add(adds)
    theirs.observe(amount)
    (ours_buckets, ours_sum), (their_buckets, their_sum) = _buckets(ours), _buckets(theirs)
    assert ours_buckets == their_buckets
    assert ours_sum == their_sum or (math.isnan(ours_sum) and math.isnan(their_sum))
