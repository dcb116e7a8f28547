'''What a Python 2 client puts on the wire, for the converted client.

The upstream client is Python 2 code, converted to Python 3 with lib2to3.
By default it runs as a plain Python 3 client: text goes out as CBOR text,
CBOR byte strings come back as ``bytes``, and nothing here changes that
(both hooks below return their argument untouched).  That is what a user's
Python 3 code sees, so the default run checks that the daemon answers every
string in the type it was sent as.

``COMPAT_PY2_WIRE=1`` (``run.sh --py2-wire``) makes the converted client
put on the wire what the real Python 2 client did.  There, a string literal
is a ``str``, which is a byte string: it goes out as a CBOR byte string (the
``id``/``method``/``params`` envelope, method names, spec names, keys and
data), and the daemon answers those strings as byte strings.  So in this
mode:

* :func:`to_wire` sends every ASCII ``str`` as bytes (a non-ASCII ``str``
  stands for a Python 2 ``unicode`` and stays text);
* :func:`from_wire` decodes each ASCII byte string of a reply to ``str``,
  the native string type, as Python 2 decoded it into its ``str``.  The
  exception is a byte string that this process itself sent as a ``bytes``
  object in the current test: the converted code wrote that one as a
  ``b''`` literal (a ``str`` in Python 2, ``bytes`` now), so it gets
  ``bytes`` back.  Non-ASCII byte strings stay ``bytes``.

No value is given an equality it does not have in Python 3: the mode only
chooses the types on the wire and the types decoded from it.
The upstream Python daemon, run under Python 3, cannot take this mode (it
would look methods up by bytes names); use it against our daemon only.
'''
import os
import uuid

PY2_WIRE = os.environ.get('COMPAT_PY2_WIRE', '0') == '1'


class Unicode(str):
    '''A Python 2 ``u''`` literal that lib2to3 made a plain ``str``.

    Only its type differs from ``str`` (equality, hashing and everything
    else are ``str``'s own): py2-wire sends it as text, as Python 2 sent a
    ``unicode``.
    '''

    __slots__ = ()


# Byte strings this process sent as ``bytes`` objects (py2-wire);
# conftest.py forgets them between tests, so one test's literals do not
# decide another's types.
_SENT_RAW = set()


def forget():
    '''Forget which byte strings were sent as bytes (between tests).'''
    _SENT_RAW.clear()


def from_wire(obj):
    '''A decoded response, with Python 2's native strings in py2-wire mode.'''
    if not PY2_WIRE:
        return obj
    return _from_wire(obj)


def _from_wire(obj):
    if isinstance(obj, bytes):
        if obj in _SENT_RAW:
            return obj
        try:
            return obj.decode('ascii')
        except UnicodeDecodeError:
            return obj
    if isinstance(obj, list):
        return [_from_wire(v) for v in obj]
    if type(obj) is tuple:
        return tuple(_from_wire(v) for v in obj)
    if isinstance(obj, dict):
        return dict((_from_wire(k), _from_wire(v)) for k, v in obj.items())
    return obj


def to_wire(obj):
    '''A request, with ASCII text sent as bytes in py2-wire mode.'''
    if not PY2_WIRE:
        return obj
    return _to_wire(obj)


def _to_wire(obj):
    if isinstance(obj, Unicode):
        return str(obj)
    if isinstance(obj, str):
        try:
            return obj.encode('ascii')
        except UnicodeEncodeError:
            return obj  # a Python 2 unicode
    if isinstance(obj, bytes):
        _SENT_RAW.add(obj)
        return obj
    if isinstance(obj, (int, float, bool, type(None), uuid.UUID)):
        return obj
    if isinstance(obj, list):
        return [_to_wire(v) for v in obj]
    if type(obj) is tuple:
        return tuple(_to_wire(v) for v in obj)
    if isinstance(obj, dict):
        return dict((_to_wire(k), _to_wire(v)) for k, v in obj.items())
    return obj
