"""Plain values across the sandbox boundary: a tagged JSON encoding that only ever decodes to builtin types.

What a sandboxed program returned for a test input leaves its process as text made by :func:`encode`; the grader
turns it back into a value with :func:`decode` and compares it with the expected value there. The decoder builds
only ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``, ``set``
and ``frozenset`` (nested at most :data:`MAX_DEPTH` deep), so no object of the program's classes ever reaches the
comparison: an ``__eq__`` that always says True, a ``str`` subclass, an object lying about its ``__class__``
compares as the builtin value it holds, or is not encodable (a fail).

``encode`` runs inside the sandbox (the bootstrap embeds this file's source, so it stays stdlib-only, without
``from __future__`` imports) and is a convenience for honest programs: a hostile program can replace it and write
any text, which only lets it claim values that it could have returned anyway.

An instance of a subclass of an encodable type (a namedtuple, ``collections.Counter``, an ``IntEnum``) is encoded
as the builtin value it holds, read through the builtin type's own methods, so an overridden ``__eq__``,
``__iter__`` or ``__str__`` does not change what is compared. Floats keep their exact bits (``float.hex``: nan,
inf and -0.0 survive). Left out: every other type (``Fraction``, ``Decimal``, ``range``, generators, the program's
own classes): not encodable.

Format: JSON arrays ``[tag, payload]``: ``["n"]`` None, ``["b", 0|1]``, ``["i", hex]``, ``["f", float.hex]``,
``["c", re, im]``, ``["s", hex of UTF-8]``, ``["y", hex]`` bytes, ``["l"|"t"|"S"|"F", [items]]`` list / tuple / set /
frozenset (set items in a canonical order), ``["d", [[key, value], ...]]``.
"""

#: Deepest nesting encoded or decoded (a self-containing list is not encodable).
MAX_DEPTH = 100


class Unencodable(TypeError):
    """The value is not made of the encodable builtin types (or nests deeper than :data:`MAX_DEPTH`)."""


def _complex_value(v):
    return complex(*complex.__getnewargs__(v))


def _bytes_value(v):
    return bytes.__getitem__(v, slice(None))


def _tuple_value(v):
    return tuple.__getitem__(v, slice(None))


# the builtin value an instance of a subclass holds, read through the base type's own methods
_BASES = (
    (int, int.__int__),
    (float, float.__float__),
    (complex, _complex_value),
    (str, str.__str__),
    (bytes, _bytes_value),
    (list, list.copy),
    (tuple, _tuple_value),
    (dict, dict.copy),
    (set, set.copy),
    (frozenset, frozenset.copy),
)


def _text(v, depth, _type=type, _issubclass=issubclass, _join=",".join, _sorted=sorted):
    if depth > MAX_DEPTH:
        raise Unencodable("nested deeper than %d" % MAX_DEPTH)
    t = _type(v)
    if t is bool:
        return '["b",1]' if v else '["b",0]'
    if v is None:
        return '["n"]'
    for base, value_of in _BASES:  # identity, not ==: a metaclass may override __eq__
        if t is base:
            break
    else:
        for base, value_of in _BASES:
            if _issubclass(t, base):
                v, t = value_of(v), base
                break
        else:
            raise Unencodable("cannot encode a %s" % t.__name__)
    if t is int:
        return '["i","%s"]' % int.__format__(v, "x")
    if t is float:
        return '["f","%s"]' % float.hex(v)
    if t is complex:
        return '["c","%s","%s"]' % (float.hex(v.real), float.hex(v.imag))
    if t is str:  # hex of the UTF-8 bytes: no escaping, and lone surrogates survive
        return '["s","%s"]' % str.encode(v, "utf-8", "surrogatepass").hex()
    if t is bytes:
        return '["y","%s"]' % bytes.hex(v)
    d = depth + 1
    if t is list or t is tuple:
        return '["%s",[%s]]' % ("l" if t is list else "t", _join([_text(x, d) for x in v]))
    if t is dict:
        return '["d",[%s]]' % _join(["[%s,%s]" % (_text(k, d), _text(x, d)) for k, x in dict.items(v)])
    # a canonical order: equal sets encode to equal text
    return '["%s",[%s]]' % ("S" if t is set else "F", _join(_sorted([_text(x, d) for x in v])))


def encode(value) -> str:
    """One line of ASCII JSON holding ``value``; raises :class:`Unencodable` for anything else.

    Written without the ``json`` module (its import would cost every sandboxed program ~5 ms). Example:
    ``encode((1, "a"))`` → ``'["t",[["i","1"],["s","61"]]]'``.
    """
    try:
        return _text(value, 0)
    except RecursionError:
        raise Unencodable("nested too deeply") from None


def _untag(x, depth):
    if depth > MAX_DEPTH:
        raise ValueError("nested deeper than %d" % MAX_DEPTH)
    if type(x) is not list or not x or type(x[0]) is not str:
        raise ValueError("not a tagged value")
    tag, n = x[0], len(x)
    if tag == "n" and n == 1:
        return None
    if tag == "b" and n == 2 and type(x[1]) is int and x[1] in (0, 1):
        return x[1] == 1
    if n == 2 and type(x[1]) is str:
        if tag == "i":
            return int(x[1], 16)
        if tag == "f":
            return float.fromhex(x[1])
        if tag == "s":
            return bytes.fromhex(x[1]).decode("utf-8", "surrogatepass")
        if tag == "y":
            return bytes.fromhex(x[1])
    if tag == "c" and n == 3 and type(x[1]) is str and type(x[2]) is str:
        return complex(float.fromhex(x[1]), float.fromhex(x[2]))
    if n == 2 and type(x[1]) is list:
        d = depth + 1
        if tag == "d":
            pairs = []
            for p in x[1]:
                if type(p) is not list or len(p) != 2:
                    raise ValueError("a dict item is not a [key, value] pair")
                pairs.append((_untag(p[0], d), _untag(p[1], d)))
            return dict(pairs)
        items = [_untag(i, d) for i in x[1]]
        if tag == "l":
            return items
        if tag == "t":
            return tuple(items)
        if tag == "S":
            return set(items)
        if tag == "F":
            return frozenset(items)
    raise ValueError("bad tagged value %r" % (tag,))


def decode(text: str):
    """The value that :func:`encode` wrote: builtin types only. Raises ValueError for anything malformed.

    Example: ``decode('["t",[["i","1"],["s","61"]]]')`` → ``(1, 'a')``.
    """
    import json

    try:
        return _untag(json.loads(text), 0)
    except (TypeError, RecursionError, OverflowError, UnicodeDecodeError) as e:  # unhashable items, deep JSON
        raise ValueError("bad encoded value: %s" % e) from None
