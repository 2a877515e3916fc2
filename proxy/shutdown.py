"""The notice a worker gives what it holds open when it is asked to stop (Gunicorn's SIGTERM).

Long-lived work (a Live session) registers here; the worker announces, and each gets the graceful timeout
to end on its own terms (Gemini's goAway to its client) before the worker is gone."""
import threading

_listeners = set()
_lock = threading.Lock()
_announced = threading.Event()


def listen(callback):
    """Call `callback()` when the worker is told to stop (at once, if it has been already)."""
    with _lock:
        _listeners.add(callback)
    if _announced.is_set():
        callback()


def forget(callback):
    with _lock:
        _listeners.discard(callback)


def announce():
    """The worker is stopping: tell everyone listening. Safe from a signal handler's greenlet."""
    _announced.set()
    with _lock:
        listening = list(_listeners)
    for callback in listening:
        callback()


def stopping():
    return _announced.is_set()
