"""Termination signals during a write: SIGTERM, SIGHUP and SIGINT raise an exception instead.

While :func:`cleanup_on_signals` is active, the signals raise in the main thread so that
``finally`` clauses (removing a staging folder) run before the process ends;
:func:`signals_deferred` holds them back while files are being moved into place.
"""

from __future__ import annotations

import contextlib
import signal
import threading

_signal_state = {"depth": 0, "saved": {}, "defer": 0, "pending": []}


def _interrupt(signum, frame):
    if _signal_state["defer"]:
        _signal_state["pending"].append(signum)
        return
    _raise_for(signum)


def _raise_for(signum):
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def _catchable_signals():
    sigs = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):
        sigs.append(signal.SIGHUP)
    return sigs


@contextlib.contextmanager
def cleanup_on_signals():
    """While the block runs, SIGTERM and SIGHUP raise ``SystemExit(128 + signal)`` and SIGINT
    ``KeyboardInterrupt`` in the main thread, so ``finally`` clauses (removing staging folders)
    run before the process ends; the previous handlers are restored afterwards. Signals whose
    handler the program set itself (or ignores) are left alone; in other threads, nothing is done.

    Yields
    ------
    None
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _signal_state["depth"] == 0:
        saved = {}
        for sig in _catchable_signals():
            old = signal.getsignal(sig)
            if old in (signal.SIG_DFL, signal.default_int_handler):
                saved[sig] = old
                signal.signal(sig, _interrupt)
        _signal_state["saved"] = saved
    _signal_state["depth"] += 1
    try:
        yield
    finally:
        _signal_state["depth"] -= 1
        if _signal_state["depth"] == 0:
            for sig, old in _signal_state["saved"].items():
                signal.signal(sig, old)
            _signal_state["saved"] = {}


@contextlib.contextmanager
def signals_deferred():
    """Signals caught by :func:`cleanup_on_signals` wait until the block is done (file moves and
    clean-up are not cut in half); then the first one is raised.

    Yields
    ------
    None
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _signal_state["defer"] += 1
    try:
        yield
    finally:
        _signal_state["defer"] -= 1
        if not _signal_state["defer"] and _signal_state["pending"]:
            signum = _signal_state["pending"][0]
            _signal_state["pending"].clear()
            _raise_for(signum)
