'''Run functions for the work specs used by test_cli.py and
test_worker_flow.py.  Workers (``coordinate run_one``,
``coordinate_worker``) import this module by name: run.sh puts
python-compat-tests/ on PYTHONPATH.
'''
import logging

logger = logging.getLogger(__name__)

MODULE = __name__


def spec_first(name='compat_first', then='compat_second', **extra):
    '''Work spec whose units each emit one unit for the ``then`` spec.'''
    spec = {
        'name': name,
        'min_gb': 0.01,
        'module': MODULE,
        'run_function': 'emit_output',
        'then': then,
    }
    spec.update(extra)
    return spec


def spec_second(name='compat_second', **extra):
    '''Work spec at the end of the chain.'''
    spec = {
        'name': name,
        'min_gb': 0.01,
        'module': MODULE,
        'run_function': 'consume',
    }
    spec.update(extra)
    return spec


def child_key(key):
    '''Key of the unit that ``emit_output`` creates for unit ``key``.'''
    if isinstance(key, bytes):
        key = key.decode('ascii')
    return str(key) + '-next'


def emit_output(work_unit):
    '''Chain one unit to the ``then`` spec: ``output`` maps key -> data.'''
    n = int(work_unit.data['n'])
    logger.info('emit_output %r n=%d', work_unit.key, n)
    work_unit.data['emitted'] = True
    work_unit.data['output'] = {
        child_key(work_unit.key): {'n': n * 10, 'parent': str(work_unit.key)},
    }


def consume(work_unit):
    '''Record that the chained unit ran.'''
    n = int(work_unit.data['n'])
    logger.info('consume %r n=%d', work_unit.key, n)
    work_unit.data['result'] = n + 1


def always_fail(work_unit):
    '''A run function that fails, for failed-unit checks.'''
    raise RuntimeError('compat_flow.always_fail: deliberate failure')
