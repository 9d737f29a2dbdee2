"""A guard over the whole test run: every aiohttp ``ClientSession`` is closed by the test or fixture that made it.

The Elasticsearch client's transport opens an aiohttp session (and its connector) on its first request; only
``await es.close()`` closes them. aiohttp complains about an unclosed one when the garbage collector finalises it,
which can be many tests later, inside an unrelated test (a CI run once failed that way in ``test_frozen_replay``),
or never, when an in-process benchmark's ``gc.freeze()`` took it out of the collections. So this plugin remembers
which test made each session: a session finalised unclosed then fails with that test's name, and a session still
open at the end of the run fails the run, naming the test that made it. It costs a weak reference per session and
one lookup in its finaliser; it does no collection per test.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

_current = ["(outside any test)"]
_made_in: dict[int, str] = {}  # id(session) -> the test that made it; by id: the finaliser runs after weakrefs die
_sessions: weakref.WeakSet[aiohttp.ClientSession] = weakref.WeakSet()
_left: list[str] = []  # the tests that made the sessions still open at the end of the run
_init = aiohttp.ClientSession.__init__
_del = aiohttp.ClientSession.__del__


def _init_remembering(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
    _init(self, *args, **kwargs)
    _made_in[id(self)] = _current[0]
    _sessions.add(self)


def _del_naming(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
    """aiohttp's own finaliser, with the test that made the session in its warning (an error in this suite)."""
    made_in = _made_in.pop(id(self), "(unknown)")
    if not self.closed:
        warnings.warn(f"Unclosed client session {self!r} made in {made_in}", ResourceWarning, 2, self)


def pytest_configure(config: pytest.Config) -> None:
    aiohttp.ClientSession.__init__ = _init_remembering  # type: ignore[method-assign]
    aiohttp.ClientSession.__del__ = _del_naming  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    aiohttp.ClientSession.__init__ = _init  # type: ignore[method-assign]
    aiohttp.ClientSession.__del__ = _del  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    _current[0] = item.nodeid  # setup, call and teardown: a fixture's session counts as its test's
    try:
        return (yield)
    finally:
        _current[0] = f"(after {item.nodeid})"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Every fixture has been torn down: a session still open now was never closed."""
    _left[:] = sorted(_made_in.get(id(s), "(unknown)") for s in list(_sessions) if not s.closed)
    if _left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _left:
        terminalreporter.section("unclosed aiohttp sessions", red=True)
        for made_in in _left:
            terminalreporter.write_line(f"a ClientSession never closed, made in {made_in}")
