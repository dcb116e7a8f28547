'''The upstream ``coordinate`` CLI (coordinate.coordinatec, converted to
Python 3) against the daemon under test: every subcommand that talks to the
daemon.

The CLI exits 0 even when an RPC failed (it logs and goes on), so each test
checks what it printed, and the ``cli`` fixture (conftest.py) rejects any
Python traceback on stdout or stderr.  State is prepared and checked with
the upstream ``TaskMaster`` client.
'''
import ast
import json
import os

import yaml

import compat_flow
from coordinate.constants import (AVAILABLE, FAILED, FINISHED, PENDING)

SPEC_A = {
    'name': 'cli_a',
    'desc': 'python-compat-tests CLI spec A',
    'min_gb': 0.01,
    'module': 'compat_flow',
    'run_function': 'consume',
}
SPEC_B = dict(SPEC_A, name='cli_b', desc='python-compat-tests CLI spec B')

STATUS_KEYS = ('num_available', 'num_pending', 'num_blocked', 'num_failed',
               'num_finished', 'num_tasks')


def one_work(tm, spec_name, key, worker='cli-worker'):
    wu = tm.get_work(worker, available_gb=16, work_spec_names=[spec_name])
    assert wu is not None, 'no work from %s, wanted %r' % (spec_name, key)
    assert wu.work_spec_name == spec_name
    assert wu.key == key
    return wu


def prepare_states(tm, spec=SPEC_A):
    '''fa1 failed, fi1/fi2 finished, pe1 pending, av1/av2 available.'''
    tm.set_work_spec(spec)
    name = spec['name']
    tm.add_work_units(name, [('fa1', {'n': 1})])
    one_work(tm, name, 'fa1').fail()
    tm.add_work_units(name, [('fi1', {'n': 2}), ('fi2', {'n': 3})])
    one_work(tm, name, 'fi1').finish()
    one_work(tm, name, 'fi2').finish()
    tm.add_work_units(name, [('pe1', {'n': 4})])
    one_work(tm, name, 'pe1')
    tm.add_work_units(name, [('av1', {'n': 5}), ('av2', {'n': 6})])
    # available, pending, blocked, failed, finished, total
    return (2, 1, 0, 1, 2, 6)


def statuses(tm, spec_name, keys):
    return [None if s is None else s['status']
            for s in tm.get_work_unit_status(spec_name, list(keys))]


def parse_summary(out):
    lines = out.splitlines()
    assert lines[0].split() == ['Work', 'spec', 'Avail', 'Pending', 'Blocked',
                                'Failed', 'Finished', 'Total'], out
    assert set(lines[1].replace(' ', '')) == {'='}, out
    rows = {}
    for line in lines[2:]:
        parts = line.split()
        assert len(parts) == 7, out
        rows[parts[0]] = tuple(int(x) for x in parts[1:])
    return rows


def test_summary(cli, task_master):
    want_a = prepare_states(task_master)
    task_master.set_work_spec(SPEC_B)
    task_master.add_work_units('cli_b', [('b%d' % i, {'n': i})
                                         for i in range(3)])
    rows = parse_summary(cli.run('summary'))
    assert rows == {'cli_a': want_a, 'cli_b': (3, 0, 0, 0, 0, 3)}
    assert parse_summary(cli.run('summary', '--text')) == rows

    js = json.loads(cli.run('summary', '--json'))
    assert isinstance(js.pop('_NOW'), float)
    assert js == {
        'cli_a': dict(zip(STATUS_KEYS, want_a)),
        'cli_b': dict(zip(STATUS_KEYS, (3, 0, 0, 0, 0, 3))),
    }


def test_summary_empty(cli):
    assert parse_summary(cli.run('summary')) == {}


def test_work_specs(cli, task_master):
    assert cli.run('work_specs') == ''
    task_master.set_work_spec(SPEC_B)
    task_master.set_work_spec(SPEC_A)
    assert cli.run('work_specs').splitlines() == ['cli_a', 'cli_b']


def test_work_spec(cli, task_master, tmpdir):
    task_master.set_work_spec(SPEC_A)
    got = json.loads(cli.run('work_spec', '-W', 'cli_a', '--json'))
    for k, v in SPEC_A.items():
        assert got.get(k) == v, (k, got)
    got_yaml = yaml.safe_load(cli.run('work_spec', '-W', 'cli_a'))
    assert got_yaml == got
    assert yaml.safe_load(cli.run('work_spec', '-W', 'cli_a', '--yaml')) == got
    # the name may also come from a work spec file
    path = tmpdir.join('spec.yaml')
    path.write(yaml.safe_dump(SPEC_A))
    got_file = json.loads(cli.run('work_spec', '-w', str(path), '--json'))
    assert got_file == got


def test_status(cli, task_master):
    want = prepare_states(task_master)
    got = json.loads(cli.run('status', '-W', 'cli_a'))
    assert got == dict(zip(STATUS_KEYS, want))


def test_work_units(cli, task_master):
    prepare_states(task_master)
    all_keys = ['av1', 'av2', 'fa1', 'fi1', 'fi2', 'pe1']
    assert cli.run('work_units', '-W', 'cli_a').splitlines() == all_keys
    for status, keys in (('available', ['av1', 'av2']),
                         ('pending', ['pe1']),
                         ('finished', ['fi1', 'fi2']),
                         ('failed', ['fa1'])):
        out = cli.run('work_units', '-W', 'cli_a', '-s', status)
        assert out.splitlines() == keys, status
    out = cli.run('work_units', '-W', 'cli_a', '-s', 'finished', '-n', '1')
    assert out.splitlines() == ['fi1']
    out = cli.run('work_units', '-W', 'cli_a', '-s', 'available', '--details')
    assert out.splitlines() == ["'av1': {'n': 5}", "'av2': {'n': 6}"]


def test_work_unit(cli, task_master):
    prepare_states(task_master)
    task_master.worker_register('cli-worker', mode=task_master.RUN,
                                environment={'hostname': 'compat-host',
                                             'ipaddrs': ['127.0.0.1']})
    out = cli.run('work_unit', '-W', 'cli_a', 'av1', 'pe1', 'fi1', 'fa1')
    heads = [l for l in out.splitlines() if not l.startswith(' ')]
    assert heads == ['av1 (%d)' % AVAILABLE, 'pe1 (%d)' % PENDING,
                     'fi1 (%d)' % FINISHED, 'fa1 (%d)' % FAILED], out
    # the pending unit names its worker, with the worker's heartbeat info
    pe1 = out.split('pe1 (')[1].split('fi1 (')[0]
    assert '  Worker: cli-worker (compat-host on 127.0.0.1)' in pe1, out


def write_units(path, units):
    with open(str(path), 'w') as f:
        f.write('# one JSON object per line: {key: data}\n')
        for k, v in units:
            f.write(json.dumps({k: v}) + '\n')


def test_load(cli, task_master, tmpdir):
    spec = dict(SPEC_A, name='cli_load')
    spec_path = tmpdir.join('load.yaml')
    spec_path.write(yaml.safe_dump(spec))
    units_path = tmpdir.join('units.jsonl')
    units = [('u%d' % i, {'n': i, 'text': 'unit %d' % i}) for i in range(3)]
    write_units(units_path, units)
    out = cli.run('load', '-w', str(spec_path), '-u', str(units_path),
                  '-n', '5')
    assert "finished writing 3 work units to work_spec='cli_load'" in out
    got = task_master.get_work_spec('cli_load')
    assert got['nice'] == 5
    for k, v in spec.items():
        assert got[k] == v
    assert sorted(task_master.get_work_units('cli_load')) == sorted(units)
    assert task_master.status('cli_load')['num_available'] == 3

    # --no-work: only the spec
    spec2 = dict(SPEC_A, name='cli_load_empty')
    spec_path.write(yaml.safe_dump(spec2))
    out = cli.run('load', '-w', str(spec_path), '--no-work')
    assert 'no work units. done.' in out
    assert task_master.get_work_spec('cli_load_empty')['name'] == \
        'cli_load_empty'
    assert task_master.get_work_units('cli_load_empty') == []


def test_addwork(cli, task_master, tmpdir):
    task_master.set_work_spec(SPEC_A)
    task_master.add_work_units('cli_a', [('old', {'n': 0})])
    units_path = tmpdir.join('more.jsonl')
    units = [('new%d' % i, {'n': i}) for i in range(4)]
    write_units(units_path, units)
    assert cli.run('addwork', '-W', 'cli_a', '-u', str(units_path)) == ''
    assert (sorted(task_master.get_work_units('cli_a')) ==
            sorted(units + [('old', {'n': 0})]))
    assert task_master.status('cli_a')['num_available'] == 5


def test_flow(cli, task_master, tmpdir):
    flow = {
        'flows': {
            'cli_flow_first': {
                'min_gb': 0.01,
                'module': 'compat_flow',
                'run_function': 'emit_output',
                'then': 'cli_flow_second',
            },
            'cli_flow_second': {
                'min_gb': 0.01,
                'module': 'compat_flow',
                'run_function': 'consume',
            },
        },
    }
    path = tmpdir.join('flow.yaml')
    path.write(yaml.safe_dump(flow))
    cli.run('flow', str(path))
    assert cli.run('work_specs').splitlines() == ['cli_flow_first',
                                                  'cli_flow_second']
    first = task_master.get_work_spec('cli_flow_first')
    assert first['then'] == 'cli_flow_second'
    assert first['module'] == 'compat_flow'
    assert first['run_function'] == 'emit_output'
    second = task_master.get_work_spec('cli_flow_second')
    assert second['run_function'] == 'consume'


def test_prioritize(cli, task_master):
    task_master.set_work_spec(SPEC_A)
    task_master.add_work_units('cli_a', [('a', {}), ('b', {}), ('c', {})])
    assert cli.run('prioritize', 'cli_a', 'c') == ''
    one_work(task_master, 'cli_a', 'c').finish()
    one_work(task_master, 'cli_a', 'a').finish()
    cli.run('prioritize', 'cli_a', 'a', 'b')  # a is finished: no matter
    one_work(task_master, 'cli_a', 'b').finish()
    assert task_master.get_work('cli-worker', available_gb=16) is None


def test_pause(cli, task_master):
    task_master.set_work_spec(SPEC_A)
    task_master.add_work_units('cli_a', [('p', {})])
    assert cli.run('pause', 'cli_a') == ''
    assert task_master.get_work('cli-worker', available_gb=16) is None
    assert task_master.status('cli_a')['num_available'] == 1


def test_resume(cli, task_master):
    task_master.set_work_spec(SPEC_A)
    task_master.add_work_units('cli_a', [('p', {})])
    cli.run('pause', 'cli_a')
    assert task_master.get_work('cli-worker', available_gb=16) is None
    assert cli.run('resume', 'cli_a') == ''
    one_work(task_master, 'cli_a', 'p').finish()


def test_retry(cli, task_master):
    task_master.set_work_spec(SPEC_A)
    task_master.add_work_units('cli_a', [('x', {'n': 1}), ('y', {'n': 2}),
                                         ('z', {'n': 3})])
    for key in ('x', 'y', 'z'):
        one_work(task_master, 'cli_a', key).fail()
    assert statuses(task_master, 'cli_a', 'xyz') == [FAILED] * 3

    out = cli.run('retry', '-W', 'cli_a', 'y')
    assert out == 'Retried 1 work unit.\n'
    assert statuses(task_master, 'cli_a', 'xyz') == [FAILED, AVAILABLE,
                                                     FAILED]

    out = cli.run('retry', '-W', 'cli_a', '--all')
    assert out == 'Retried 2 work units.\n'
    assert statuses(task_master, 'cli_a', 'xyz') == [AVAILABLE] * 3

    out = cli.run('retry', '-W', 'cli_a', '--all')
    assert out == 'Nothing to do.\n'


def test_clear(cli, task_master):
    prepare_states(task_master)
    out = cli.run('clear', '-W', 'cli_a', '-s', 'finished')
    assert out == 'Removed 2 work units.\n'
    assert sorted(k for k, _ in task_master.get_work_units('cli_a')) == \
        ['av1', 'av2', 'fa1', 'pe1']

    out = cli.run('clear', '-W', 'cli_a', 'av1')
    assert out == 'Removed 1 work units.\n'
    out = cli.run('clear', '-W', 'cli_a', '-s', 'failed', 'av2')
    assert out == 'Removed 0 work units.\n'  # av2 is not failed
    out = cli.run('clear', '-W', 'cli_a', '-s', 'available', 'av2')
    assert out == 'Removed 1 work units.\n'
    assert sorted(k for k, _ in task_master.get_work_units('cli_a')) == \
        ['fa1', 'pe1']

    out = cli.run('clear', '-W', 'cli_a')
    assert out == 'Removed 2 work units.\n'
    assert task_master.get_work_units('cli_a') == []
    assert cli.run('work_specs') == 'cli_a\n'  # the spec stays


def test_delete(cli, task_master):
    prepare_states(task_master)
    task_master.set_work_spec(SPEC_B)
    out = cli.run('delete', stdin='n\n')
    assert 'not deleting anything' in out
    assert cli.run('work_specs').splitlines() == ['cli_a', 'cli_b']
    out = cli.run('delete', '-y')
    assert out == 'deleting all\n'
    assert cli.run('work_specs') == ''
    assert task_master.list_work_specs() == ([], None)


def test_workers(cli, task_master):
    task_master.worker_register('cli-parent', mode=task_master.RUN,
                                environment={'hostname': 'compat-host',
                                             'pid': 4242})
    task_master.worker_register('cli-child', mode=task_master.RUN,
                                environment={'hostname': 'compat-host'},
                                parent='cli-parent')
    try:
        lines = cli.run('workers').splitlines()
        assert 'cli-parent (RUN)' in lines
        assert 'cli-child (RUN)' in lines
        out = cli.run('workers', '--details')
        parent = out.split('cli-parent (RUN)\n')[1].split('\ncli')[0]
        assert '  hostname: compat-host' in parent.splitlines(), out
        assert '  pid: 4242' in parent.splitlines(), out
        assert 'cli-child (RUN)' in cli.run('workers', '--all')
    finally:
        task_master.worker_unregister('cli-child')
        task_master.worker_unregister('cli-parent')
    # unregistered workers are not alive any more
    lines = cli.run('workers').splitlines()
    assert 'cli-parent (RUN)' not in lines
    assert 'cli-child (RUN)' not in lines


def test_worker_stats(cli, task_master):
    task_master.worker_register('cli-stats', mode=task_master.RUN)
    try:
        out = cli.run('worker_stats')
        stats = ast.literal_eval(out.strip())
        assert isinstance(stats, (dict, list, tuple)), out
    finally:
        task_master.worker_unregister('cli-stats')


def test_config(cli, tmpdir):
    out = cli.run('config')
    got = yaml.safe_load(out)
    expected_path = os.environ.get('COMPAT_EXPECTED_CONFIG')
    if expected_path:
        with open(expected_path) as f:
            expected = yaml.safe_load(f)
        if os.environ.get('COMPAT_EXPECTED_CONFIG_EXACT') == '1':
            # the daemon's --config file, returned verbatim
            assert got == expected
        else:
            # the Python daemon returns its whole merged yakonfig config
            for k, v in expected.items():
                assert got.get(k) == v, k
    else:
        # a daemon we did not start: whatever it has, as a mapping
        assert isinstance(got, dict), out
    path = tmpdir.join('config-out.yaml')
    assert cli.run('config', '-o', str(path)) == ''
    assert yaml.safe_load(path.read()) == got


def test_run_one(cli, task_master):
    task_master.set_work_spec(dict(SPEC_A, name='cli_run'))
    task_master.add_work_units('cli_run', [('r1', {'n': 1}),
                                           ('r2', {'n': 2})])
    cli.run('run_one')
    assert statuses(task_master, 'cli_run', ['r1', 'r2']) == [FINISHED,
                                                            AVAILABLE]
    cli.run('run_one', '--from-work-spec', 'cli_run', '--limit-count', '1')
    assert statuses(task_master, 'cli_run', ['r1', 'r2']) == [FINISHED,
                                                            FINISHED]
    assert sorted(task_master.get_work_units('cli_run')) == [
        ('r1', {'n': 1, 'result': 2}), ('r2', {'n': 2, 'result': 3})]
    # no more work: run_one exits 2
    cli.run('run_one', rc=2)


def test_run_one_failure(cli, task_master):
    task_master.set_work_spec(dict(SPEC_A, name='cli_fail',
                                   run_function='always_fail'))
    task_master.add_work_units('cli_fail', [('f1', {'n': 1})])
    deliberate = 'RuntimeError: compat_flow.always_fail: deliberate failure'
    cli.run('run_one', expected_error=deliberate)
    status = task_master.get_work_unit_status('cli_fail', 'f1')
    assert status['status'] == FAILED
    assert 'deliberate failure' in status['traceback']
    # prints the traceback stored with the failed unit
    out = cli.run('work_unit', '-W', 'cli_fail', 'f1',
                  expected_error=deliberate)
    assert out.startswith('f1 (%d)\n' % FAILED)
    assert '  Traceback:\n' in out


def test_rpc(cli, task_master):
    task_master.set_work_spec(SPEC_A)
    out = cli.run('rpc', 'count_work_units', 'cli_a')
    assert 'Exception' not in out
    counts, msg = ast.literal_eval(out.strip())
    assert counts == {} and msg is None
