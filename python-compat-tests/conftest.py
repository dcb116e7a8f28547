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
``run.sh``.  Each test starts and ends with ``TaskMaster.clear()`` (and
unregisters the workers still listed, see ``_reset``).
'''
import glob
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import pytest

from coordinate.job_client import TaskMaster

ADDRESS = os.environ.get('COORDINATE_ADDRESS')


def _make_task_master():
    if not ADDRESS:
        raise RuntimeError('COORDINATE_ADDRESS (host:port of the daemon under '
                           'test) is not set; use python-compat-tests/run.sh')
    return TaskMaster({'address': ADDRESS})


def _reset(tm):
    '''Delete all work specs and units, and unregister live workers.

    ``clear()`` leaves workers alone, and upstream tests leave some behind
    (``worker_register('child', parent='parent')`` with no environment,
    killed fork-worker children); they would show up in the CLI's
    ``workers`` output of later tests.  Failures to list or unregister
    workers are only warned about here: test_cli.py tests those RPCs.
    '''
    tm.clear()
    try:
        modes = tm.workers()
        for worker_id in sorted(modes or ()):
            tm.worker_unregister(worker_id)
    except Exception as e:  # pylint: disable=broad-except
        warnings.warn('python-compat-tests: could not unregister workers: '
                      '%r' % (e,))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _is_coordinate_worker(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return b'coordinate' in f.read()
    except IOError:
        return False


def _reap_workers(tmpdir):
    '''Stop worker daemons a test left running; return their pids.

    Upstream's ``run_worker`` context manager (test_rejester_worker.py)
    only stops its ``coordinate_worker`` when the test body succeeds; after
    a failed assertion the daemonized ForkWorker and its children keep
    taking work from the daemon under test, which would make later tests
    fail for no fault of theirs.  Every worker started by a test writes a
    pid file into the test's ``tmpdir``: stop those (SIGTERM, then SIGKILL
    to the worker's process group, which holds its forked children).
    '''
    reaped = []
    for pidfile in sorted(glob.glob(os.path.join(str(tmpdir), '*.pid'))):
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (IOError, ValueError):
            continue
        if not (_pid_alive(pid) and _is_coordinate_worker(pid)):
            continue
        reaped.append(pid)
        try:
            pgid = os.getpgid(pid)
        except OSError:
            pgid = None
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
        deadline = time.time() + 5
        while time.time() < deadline and _pid_alive(pid):
            time.sleep(0.1)
        try:
            if pgid is not None and pgid != os.getpgrp():
                os.killpg(pgid, signal.SIGKILL)
            elif _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return reaped


@pytest.fixture(autouse=True)
def _py2wire_per_test():
    '''--py2-wire remembers which byte strings it sent as bytes for one test.'''
    import py2wire
    py2wire.forget()
    yield


@pytest.fixture
def task_master(request):
    '''A TaskMaster talking to the daemon under test; reset around each test.'''
    tm = _make_task_master()
    _reset(tm)
    try:
        yield tm
    finally:
        tmpdir = request.node.funcargs.get('tmpdir')
        if tmpdir is not None:
            reaped = _reap_workers(tmpdir)
            if reaped:
                warnings.warn('python-compat-tests: stopped worker process(es) '
                              '%s left running by %s' % (reaped,
                                                         request.node.name))
        # a fresh connection: the test may have left the socket mid-way
        cleanup = _make_task_master()
        try:
            _reset(cleanup)
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


class CoordinateCli(object):
    '''Runs the upstream ``coordinate`` CLI (``coordinate.coordinatec``).

    ``run.sh`` puts a console_scripts-style ``coordinate`` wrapper on PATH.
    The CLI exits 0 on most errors, so every call also checks that neither
    stdout nor stderr holds a Python traceback.
    '''

    def __init__(self, tmpdir):
        self.config_path = os.path.join(str(tmpdir), 'coordinate-cli.yaml')
        with open(self.config_path, 'w') as f:
            f.write('coordinate:\n  addresses: [%r]\n' % ADDRESS)
        self.exe = shutil.which('coordinate')
        if self.exe is None:
            raise RuntimeError('no `coordinate` on PATH; use run.sh')

    def run(self, *args, **kwargs):
        '''Run ``coordinate -c CONFIG ARGS``; return its stdout.

        :param int rc: expected exit status (default 0; None: any, see
            ``last_rc``)
        :param str stdin: text to feed on standard input
        :param str expected_error: the run logs a traceback on purpose,
            each one ending in this line (e.g. a deliberately failing
            work unit)
        '''
        rc = kwargs.pop('rc', 0)
        stdin = kwargs.pop('stdin', None)
        timeout = kwargs.pop('timeout', 120)
        expected_error = kwargs.pop('expected_error', None)
        assert not kwargs, kwargs
        cmd = [self.exe, '-c', self.config_path] + [str(a) for a in args]
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=timeout)
        shown = ('$ %s\n--- exit %d, stdout:\n%s--- stderr:\n%s'
                 % (' '.join(cmd), p.returncode, p.stdout, p.stderr))
        sys.stderr.write(shown + '\n')
        tb = 'Traceback (most recent call last)'
        if expected_error is None:
            for stream in (p.stdout, p.stderr):
                assert tb not in stream, shown
        else:
            # a logged traceback is expected, but only for that error
            n = p.stdout.count(tb) + p.stderr.count(tb)
            assert n >= 1, shown
            assert (p.stdout + p.stderr).count(expected_error) >= n, shown
        if rc is not None:
            assert p.returncode == rc, shown
        self.last_rc = p.returncode
        self.last_stderr = p.stderr
        return p.stdout


@pytest.fixture
def cli(tmpdir, task_master):
    '''The ``coordinate`` CLI pointed at the daemon under test.

    Depends on ``task_master``, so the daemon is cleared around each test.
    '''
    return CoordinateCli(tmpdir)


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
