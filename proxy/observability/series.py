"""Adding to Prometheus series in bulk: a finished request's values under one lock, not one lock a value.

prometheus_client, for every value it adds (a request's record makes about eight), checks that the series
is labelled, takes its lock, checks that the process has not forked and writes the worker's metrics file:
11 calls an increment, 18 an observation. `add` does each of those once for all of a request's values, and
writes each value as prometheus_client does (its value, then its 16 bytes in the worker's file).
Without multiprocess mode (no PROMETHEUS_MULTIPROC_DIR), or with a client it does not recognise, each value
goes through prometheus_client's own `inc`."""
import struct
from bisect import bisect_left

from prometheus_client import values


def _multiprocess_lock():
    """The lock prometheus_client's multiprocess values share (its MmapedValue's), or None."""
    kind = values.ValueClass
    inc = getattr(kind, "inc", None)
    if not getattr(kind, "_multiprocess", False) or getattr(inc, "__closure__", None) is None:
        return None
    cells = dict(zip(inc.__code__.co_freevars, inc.__closure__))
    lock = cells["lock"].cell_contents if "lock" in cells else None
    fork_check = getattr(kind, "_MmapedValue__check_for_pid_change", None)
    return lock if fork_check is not None and hasattr(lock, "acquire") else None


_LOCK = _multiprocess_lock()
_TWO_DOUBLES = struct.Struct(b"dd").pack  # a value and its timestamp, as mmap_dict packs them


def counter(child):
    """What `add` takes for a labelled Counter's (or Gauge's) series."""
    return child._value


def histogram(child):
    """(its sum, its buckets, their upper bounds) for `add_observation`, of a labelled Histogram's series."""
    return child._sum, child._buckets, child._upper_bounds


def observation(slots, amount, adds):
    """Append to `adds` what observing `amount` adds to a histogram series: its sum, and its bucket (the
    first whose upper bound the amount does not exceed, as Histogram.observe finds it)."""
    total, buckets, bounds = slots
    adds.append((total, amount))
    index = bisect_left(bounds, amount)
    if index < len(buckets):
        adds.append((buckets[index], 1))


def add(adds):
    """Add each (value, amount) of `adds` (amounts never negative on a counter)."""
    if _LOCK is None:
        for value, amount in adds:
            value.inc(amount)
        return
    with _LOCK:
        adds[0][0]._MmapedValue__check_for_pid_change()  # once for all: after a fork it reopens every file
        for value, amount in adds:
            value._value += amount
            value._timestamp = 0.0
            file = value._file
            position = file._positions.get(value._key)
            if position is None:  # not in the file yet: its write_value makes room
                file.write_value(value._key, value._value, 0.0)
            else:  # as MmapedDict.write_value writes a value it holds: 16 bytes assigned at once
                file._m[position:position + 16] = _TWO_DOUBLES(value._value, 0.0)
