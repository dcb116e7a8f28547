'''Python 2 string semantics for the converted (Python 3) Coordinate client.

The upstream client is Python 2 code.  There, a CBOR byte string decodes to
``str``, which compares (and hashes) equal to the same ASCII text, works as a
module or function name for ``__import__``/``getattr``, formats with ``%s``
as its raw characters, and is sent back to the daemon as a byte string.  The
Go-compatible daemons return work unit keys (and ``module``/``run_function``)
as CBOR byte strings, so a plain Python 3 conversion would see ``b'u'`` where
the Python 2 client saw ``'u'`` and fail comparisons that never failed for
real clients.

``fixups.py`` hooks the two functions below into
``coordinate.base_client.CborRpcClient._rpc``:

* :func:`from_wire` runs on every decoded response.  Each ASCII byte string
  becomes a :class:`Py2Str`: a ``str`` that also equals the original bytes
  and is sent back as bytes.  Non-ASCII byte strings stay ``bytes``; Python 2
  would not have compared those equal to any text either.
* :func:`to_wire` runs on every request before encoding and turns each
  :class:`Py2Str` back into the byte string it came from, so a key the
  daemon sent as bytes goes back as the same bytes, as with Python 2.

Set ``COMPAT_PY2_BYTES=0`` to switch this off and see the raw Python 3
behaviour.

``COMPAT_PY2_WIRE=1`` (``run.sh --py2-wire``) goes one step further on the
way out: every ASCII ``str`` is sent as a CBOR byte string, as Python 2
sent its (non-unicode) ``str`` literals -- the ``id``/``method``/``params``
envelope, method names, work spec names and data keys.  That is what the
real Python 2 client puts on the wire (except for ``unicode`` values such
as JSON-decoded data, which this over-approximates), so it checks the
daemon's byte/text leniency.  The upstream Python daemon, run under
Python 3, cannot take it (it would look up methods by bytes names); use it
against Go-compatible daemons only.
'''
import os
import uuid

ENABLED = os.environ.get('COMPAT_PY2_BYTES', '1') != '0'
PY2_WIRE = os.environ.get('COMPAT_PY2_WIRE', '0') == '1'


class Py2Str(str):
    '''An ASCII CBOR byte string, seen as a Python 2 ``str``.

    It is text (so ``__import__``, ``getattr``, ``%s`` and file names work)
    that also compares equal to its bytes.  ``hash(str) == hash(bytes)`` in
    CPython for ASCII data, so mixed dict/set lookups work both ways.
    '''

    __slots__ = ()

    def __eq__(self, other):
        if isinstance(other, (bytes, bytearray)):
            return self.encode('ascii') == other
        return str.__eq__(self, other)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = str.__hash__

    # Python 2 ordered str (bytes) values bytewise, and ASCII str against
    # unicode by code point: the same order either way.
    def _cmp_other(self, other):
        if isinstance(other, (bytes, bytearray)):
            return self.encode('ascii'), other
        return str(self), other

    def __lt__(self, other):
        a, b = self._cmp_other(other)
        return a < b

    def __le__(self, other):
        a, b = self._cmp_other(other)
        return a <= b

    def __gt__(self, other):
        a, b = self._cmp_other(other)
        return a > b

    def __ge__(self, other):
        a, b = self._cmp_other(other)
        return a >= b

    def decode(self, encoding='utf-8', errors='strict'):
        '''Python 2 ``str.decode``.'''
        return self.encode('ascii').decode(encoding, errors)

    def __reduce__(self):
        return (Py2Str, (str(self),))


def _register_yaml():
    # PyYAML (as Python 2's did for an ASCII str) writes a Py2Str as a plain
    # string; without this safe_dump refuses the str subclass.
    try:
        import yaml
        import yaml.representer
    except ImportError:
        return
    for dumper in (yaml.SafeDumper, yaml.Dumper):
        dumper.add_representer(
            Py2Str, yaml.representer.SafeRepresenter.represent_str)


_register_yaml()


def _from_bytes(b):
    try:
        return Py2Str(b.decode('ascii'))
    except UnicodeDecodeError:
        return b


def from_wire(obj):
    '''Convert a decoded response to Python 2 string semantics.'''
    if not ENABLED:
        return obj
    return _from_wire(obj)


def _from_wire(obj):
    if isinstance(obj, bytes):
        return _from_bytes(obj)
    if isinstance(obj, list):
        return [_from_wire(v) for v in obj]
    if isinstance(obj, tuple):
        # namedtuples are not produced by the decoder; plain tuples are
        return tuple(_from_wire(v) for v in obj)
    if isinstance(obj, dict):
        return dict((_from_wire(k), _from_wire(v)) for k, v in obj.items())
    return obj


def to_wire(obj):
    '''Convert :class:`Py2Str` values in a request back to bytes.'''
    if not ENABLED:
        return obj
    return _to_wire(obj)


def _to_wire(obj):
    if isinstance(obj, Py2Str):
        return obj.encode('ascii')
    if PY2_WIRE and isinstance(obj, str):
        try:
            return obj.encode('ascii')
        except UnicodeEncodeError:
            return obj  # Python 2 unicode
    if isinstance(obj, (str, bytes, int, float, bool, type(None), uuid.UUID)):
        return obj
    if isinstance(obj, list):
        return [_to_wire(v) for v in obj]
    if type(obj) is tuple:
        return tuple(_to_wire(v) for v in obj)
    if isinstance(obj, dict):
        return dict((_to_wire(k), _to_wire(v)) for k, v in obj.items())
    return obj
