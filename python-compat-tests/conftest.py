'''pytest glue: point the upstream Coordinate test suites at a real daemon.

Upstream's ``coordinate/tests/test_job_client.py`` defines a ``task_master``
fixture that talks to an in-process Python ``JobQueue`` (no network), and
``test_job_flow.py`` / ``test_task_master.py`` import that fixture by name.
``test_rejester_worker.py`` defines its own ``task_master`` on top of a
``local_server_port`` fixture that starts the Python daemon on a random
port.

Fixtures defined in a test module win over conftest fixtures, so we cannot
override them by just defining ``task_master`` here.  Instead, before pytest
imports the test modules, we import them ourselves and replace their
``task_master`` attribute with the fixture below (the importing modules
then pick up ours too).  Nothing else in the upstream tests is changed.

The daemon address comes from ``COORDINATE_ADDRESS`` (``host:port``), set by
``run.sh``.  Each test starts and ends with ``TaskMaster.clear()``.
'''
import os
import sys

import pytest

from coordinate.job_client import TaskMaster

ADDRESS = os.environ.get('COORDINATE_ADDRESS')


def _make_task_master():
    if not ADDRESS:
        raise RuntimeError('COORDINATE_ADDRESS (host:port of the daemon under '
                           'test) is not set; use python-compat-tests/run.sh')
    return TaskMaster({'address': ADDRESS})


@pytest.fixture
def task_master():
    '''A TaskMaster talking to the daemon under test; cleared around each test.'''
    tm = _make_task_master()
    tm.clear()
    try:
        yield tm
    finally:
        # a fresh connection: the test may have left the socket mid-way
        cleanup = _make_task_master()
        try:
            cleanup.clear()
        finally:
            cleanup.close()
            tm.close()


@pytest.fixture(scope='module')
def local_server_port():
    '''Upstream starts the Python daemon here; we never want that.'''
    raise RuntimeError('local_server_port must not be used: the daemon under '
                       'test is at COORDINATE_ADDRESS')


_UPSTREAM_TEST_MODULES = (
    'coordinate.tests.test_job_client',
    'coordinate.tests.test_rejester_worker',
)


def _patch_upstream():
    import importlib
    for name in _UPSTREAM_TEST_MODULES:
        mod = importlib.import_module(name)
        assert hasattr(mod, 'task_master'), name
        mod.task_master = task_master
        if hasattr(mod, 'local_server_port'):
            mod.local_server_port = local_server_port


_patch_upstream()


def pytest_report_header(config):
    return 'coordinate daemon under test: %s (python-compat-tests)' % ADDRESS


def pytest_collection_modifyitems(session, config, items):
    # No test may be silently dropped: marks such as @pytest.mark.slow are
    # informational only upstream, and nothing here skips.
    for item in items:
        for mark in item.iter_markers():
            if mark.name in ('skip', 'skipif', 'xfail'):
                raise pytest.UsageError('%s is marked %s; python-compat-tests '
                                        'runs every test' % (item.nodeid,
                                                             mark.name))
