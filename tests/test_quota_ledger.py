"""The token-quota ledger: holds that concurrent threads and processes cannot over-reserve, settling, expiry."""
import multiprocessing
import threading

import pytest

from proxy.access.estimate import UNBOUNDED, estimate_tokens, requested_output
from proxy.access.ledger import LocalLedger, decide
from proxy.access.ledger_redis import RedisLedger
from proxy.access.holds import QuotaHolds
from tests.conftest import Clock

DAY = "2026-12-02"


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.e2e)])
def make_ledger(request, tmp_path):
    """A factory of ledgers that share one store: each call is another worker's own connection."""
    if request.param == "local":
        return lambda clock=Clock(): LocalLedger(str(tmp_path / "ledger.db"), clock)
    server = request.getfixturevalue("redis_server")
    prefix = f"test-{request.node.name}:"
    ledger = RedisLedger(server.url, prefix=prefix)
    for key in ledger.redis.scan_iter(prefix + "*"):
        ledger.redis.delete(key)
    return lambda clock=Clock(): RedisLedger(server.url, clock, prefix=prefix)


def test_a_hold_is_capped_by_what_is_left_and_refused_only_when_nothing_is(make_ledger):
    ledger = make_ledger()
    first = ledger.reserve(1, DAY, 65_536, 100, 60)  # a model's whole default output, against a quota of 100
    assert first.granted and first.tokens == 100
    refused = ledger.reserve(1, DAY, 5, 100, 60)
    assert not refused.granted and (refused.used, refused.held) == (0, 100)
    listing = ledger.reserve(1, DAY, 0, 100, 60)  # a call that spends no output waits for no one
    assert listing.granted and listing.hold is None
    assert ledger.reserve(2, DAY, 5, 100, 60).tokens == 5  # another client's quota is its own
    assert ledger.reserve(1, "2026-12-03", 5, 100, 60).granted  # and another day's


def test_settling_replaces_the_hold_by_the_real_usage(make_ledger):
    ledger = make_ledger()
    hold = ledger.reserve(1, DAY, 100, 100, 60).hold
    ledger.settle(1, DAY, hold, 22)
    assert ledger.usage(1, DAY) == (22, 0)
    second = ledger.reserve(1, DAY, 1_000, 100, 60)
    assert second.tokens == 78 and second.used == 22
    ledger.settle(1, DAY, second.hold, 90)  # a request may use more than it held: counted in full
    assert ledger.usage(1, DAY) == (112, 0)
    for estimate in (1, 0):
        refused = ledger.reserve(1, DAY, estimate, 100, 60)
        assert not refused.granted and refused.used == 112


def test_a_hold_whose_request_died_expires(make_ledger):
    clock = Clock()
    ledger = make_ledger(clock)
    assert ledger.reserve(1, DAY, 100, 100, 30).tokens == 100  # never settled: its worker died
    clock.now += 29
    assert not ledger.reserve(1, DAY, 10, 100, 30).granted
    clock.now += 2
    assert ledger.reserve(1, DAY, 10, 100, 30).tokens == 10
    assert ledger.usage(1, DAY) == (0, 10)


def test_settling_an_expired_hold_still_counts_its_usage(make_ledger):
    clock = Clock()
    ledger = make_ledger(clock)
    hold = ledger.reserve(1, DAY, 50, 100, 30).hold
    clock.now += 31
    ledger.reserve(1, DAY, 1, 100, 30)  # purges the expired hold
    ledger.settle(1, DAY, hold, 40)
    assert ledger.usage(1, DAY)[0] == 40


def test_the_databases_record_is_a_floor_never_a_second_count(make_ledger):
    ledger = make_ledger()
    ledger.floor(1, DAY, 70)  # usage recorded before this ledger existed
    ledger.settle(1, DAY, None, 20)
    ledger.floor(1, DAY, 85)  # the database caught up with part of it: no double count
    assert ledger.usage(1, DAY)[0] == 90
    assert ledger.reserve(1, DAY, 500, 100, 60).tokens == 10


def test_concurrent_threads_cannot_over_reserve(make_ledger):
    results, start = [], threading.Barrier(20)

    def worker():
        ledger = make_ledger()  # each thread its own connection, as each worker has
        start.wait()
        results.append(ledger.reserve(1, DAY, 30, 100, 60))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    granted = [r.tokens for r in results if r.granted]
    assert sum(granted) == 100 and sorted(granted) == [10, 30, 30, 30]


def _reserve_in_a_process(path, out):
    ledger = LocalLedger(path)
    out.put([ledger.reserve(1, DAY, 7, 100, 60).tokens for _ in range(10)])


def test_concurrent_processes_cannot_over_reserve(tmp_path):
    path = str(tmp_path / "ledger.db")
    LocalLedger(path).usage(1, DAY)  # the file and its tables exist before the race
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    processes = [context.Process(target=_reserve_in_a_process, args=(path, out)) for _ in range(4)]
    for process in processes:
        process.start()
    held = [tokens for _ in processes for tokens in out.get(timeout=30)]
    for process in processes:
        process.join(timeout=30)
    assert sum(held) == 100 and held.count(7) == 14 and held.count(2) == 1
    assert LocalLedger(path).usage(1, DAY) == (0, 100)


def test_a_repeated_request_id_releases_its_smallest_hold(tmp_path):
    ledger = LocalLedger(str(tmp_path / "ledger.db"))
    quotas = QuotaHolds(ledger)
    quotas.reserve(1, DAY, "same-id", 60, 100)
    quotas.reserve(1, DAY, "same-id", 10, 100)
    quotas.settle(1, "same-id", 8)  # whichever finished, the larger hold stays until the other settles
    assert ledger.usage(1, DAY) == (8, 60)
    quotas.settle(1, "same-id", 50)
    assert ledger.usage(1, DAY) == (58, 0)
    quotas.settle(1, "same-id", 50)  # settled once only
    assert ledger.usage(1, DAY) == (58, 0)


def test_decide():
    assert decide(100, 99, 0, 65_536) == 1
    assert decide(100, 100, 0, 1) is None and decide(100, 40, 60, 1) is None
    assert decide(100, 40, 60, 0) == 0 and decide(100, 100, 0, 0) is None


def test_estimate_reads_each_apis_output_cap():
    assert requested_output({"generation_config": {"max_output_tokens": 50}}) == 50
    assert requested_output({"generationConfig": {"maxOutputTokens": 40}}) == 40
    assert requested_output({"max_tokens": 30}) == 30 and requested_output({"max_completion_tokens": 20}) == 20
    assert requested_output({"generationConfig": {"maxOutputTokens": True}}) is None
    assert requested_output(["not", "a", "dict"]) is None
    assert estimate_tokens(b"x" * 400, {"generationConfig": {"maxOutputTokens": 40}}, 65_536) == 141
    assert estimate_tokens(b"{}", {}, 65_536) == 65_537
    # A file or cached context is input the body does not show: the request holds all that is left.
    by_reference = b'{"contents": [{"parts": [{"fileData": {"fileUri": "files/abc"}}]}]}'
    assert estimate_tokens(by_reference, {"generationConfig": {"maxOutputTokens": 1}}, 65_536) == UNBOUNDED


def test_a_worker_forgets_requests_that_never_settled(tmp_path):
    clock = Clock(0.0)
    quotas = QuotaHolds(LocalLedger(str(tmp_path / "ledger.db")), hold_seconds=30, clock=clock)
    for n in range(1024):
        quotas.reserve(1, DAY, f"dead-{n}", 0, 100)
    clock.now += 31
    quotas.reserve(1, DAY, "alive", 0, 100)
    assert list(quotas._pending) == ["alive"]
