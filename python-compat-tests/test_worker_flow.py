'''Real workers through a two-spec flow chained with ``then``.

Spec ``compat_first`` has ``then: compat_second``; its run function
(compat_flow.emit_output) sets ``output`` so that finishing each unit
creates one unit in ``compat_second`` (compat_flow.consume).  The final
state is checked with ``get_work_unit_status`` and ``get_work_units``.

* test_run_one_chain: ``coordinate run_one`` (SingleWorker), one unit per
  invocation, until it reports that there is no more work.
* test_coordinate_worker_chain: the forking ``coordinate_worker`` daemon
  (ForkWorker), as deployed; stopped by its PID afterwards.
'''
import os
import signal
import subprocess
import time

import yaml

import compat_flow
from coordinate.constants import FINISHED

N_UNITS = 4


def load_flow(tm):
    tm.set_work_spec(compat_flow.spec_first())
    tm.set_work_spec(compat_flow.spec_second())
    units = [('k%d' % i, {'n': i}) for i in range(N_UNITS)]
    tm.add_work_units('compat_first', units)
    return units


def check_final_state(tm, units):
    keys = [k for k, _ in units]
    first = tm.get_work_unit_status('compat_first', keys)
    assert [s['status'] for s in first] == [FINISHED] * N_UNITS, first

    child_keys = [compat_flow.child_key(k) for k in keys]
    second = tm.get_work_unit_status('compat_second', child_keys)
    assert [s and s['status'] for s in second] == [FINISHED] * N_UNITS, \
        second

    got_first = dict(tm.get_work_units('compat_first'))
    for k, data in units:
        assert got_first[k]['n'] == data['n']
        assert got_first[k]['emitted'] is True
    got_second = dict(tm.get_work_units('compat_second'))
    assert sorted(got_second) == sorted(child_keys)
    for k, data in units:
        d = got_second[compat_flow.child_key(k)]
        assert d['n'] == data['n'] * 10, d
        assert d['parent'] == k, d
        assert d['result'] == data['n'] * 10 + 1, d

    assert tm.status('compat_first') == {
        'num_available': 0, 'num_pending': 0, 'num_blocked': 0,
        'num_finished': N_UNITS, 'num_failed': 0, 'num_tasks': N_UNITS}
    assert tm.status('compat_second') == {
        'num_available': 0, 'num_pending': 0, 'num_blocked': 0,
        'num_finished': N_UNITS, 'num_failed': 0, 'num_tasks': N_UNITS}


def test_run_one_chain(cli, task_master):
    units = load_flow(task_master)
    ran = 0
    for _ in range(4 * N_UNITS):
        cli.run('run_one', rc=None)
        if cli.last_rc == 2:  # no work left
            break
        assert cli.last_rc == 0
        ran += 1
    else:
        raise AssertionError('run_one never ran out of work')
    assert ran == 2 * N_UNITS
    check_final_state(task_master, units)


def wait_for(timeout, condition, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def test_coordinate_worker_chain(task_master, tmpdir):
    units = load_flow(task_master)
    task_master.set_mode(task_master.RUN)

    config = {
        'coordinate': {
            'address': os.environ['COORDINATE_ADDRESS'],
            'fork_worker': {'num_workers': 2, 'poll_interval': 0.5,
                            'spawn_interval': 0.1, 'heartbeat_interval': 1},
        },
    }
    config_path = tmpdir.join('worker.yaml')
    config_path.write(yaml.safe_dump(config))
    pid_path = tmpdir.join('worker.pid')
    log_path = tmpdir.join('worker.log')
    # daemonizes (double fork) and returns, as in upstream's
    # test_rejester_worker
    subprocess.check_call(['coordinate_worker', '-c', str(config_path),
                           '--pidfile', str(pid_path),
                           '--logpath', str(log_path)],
                          cwd=str(tmpdir), timeout=60)
    assert wait_for(20, pid_path.exists), "coordinate_worker didn't start"
    pid = int(pid_path.read())
    try:
        def done():
            a = task_master.status('compat_first')
            b = task_master.status('compat_second')
            return (a['num_finished'] == N_UNITS and
                    b['num_finished'] == N_UNITS)
        assert wait_for(60, done), (task_master.status('compat_first'),
                                    task_master.status('compat_second'))
        # the parent's children are registered under it
        workers = task_master.workers()
        assert workers, 'no live workers listed'
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            if not wait_for(20, lambda: not pid_alive(pid)):
                os.kill(pid, signal.SIGKILL)
                wait_for(10, lambda: not pid_alive(pid))
    assert not pid_alive(pid), 'coordinate_worker (pid %d) did not stop' % pid
    check_final_state(task_master, units)
