"""Plain values across the sandbox boundary: a tagged JSON encoding that decodes to plain builtin values only.

What a sandboxed program returned for a test input leaves its process as text made by :func:`encode`; the grader
turns it back into a value with :func:`decode` and compares it with the expected value there. The decoder builds
only ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``, ``set``,
``frozenset``, ``range``, dict views, an iterator over a list, ``fractions.Fraction`` and ``decimal.Decimal``
(nested at most :data:`MAX_DEPTH` deep), so no object of the program's classes ever reaches the comparison: an
``__eq__`` that always says True, a ``str`` subclass, an object lying about its ``__class__`` compares as the
builtin value it holds, or is not encodable (a fail).

``encode`` runs inside the sandbox (the bootstrap embeds this file's source, so it stays stdlib-only, without
``from __future__`` imports) and is a convenience for honest programs: a hostile program can replace it and write
any text, which only lets it claim values that it could have returned anyway, within the caps below.

The decoder runs in the grader's own process on text the program wrote, so what it builds is bounded: at most
:data:`MAX_TEXT` characters per value, and set/frozenset/dict elements (built by hashing, and integers hash without
randomisation, so colliding ones would make a set cost O(n^2)) at most :data:`MAX_HASHED` across all the values of
one program (:class:`Budget`) with at most :data:`MAX_SAME_HASH` of one set sharing a hash. Beyond the caps a value
is refused (:class:`TooLarge`: a failed test, never a pass); the encoder enforces the same caps, so an endless
generator is cut rather than left to run into the time limit. The largest value any HumanEval or MBPP reference
returns is 4.7 kB with 12 set/dict elements (30 in one program).

An instance of a subclass of an encodable type (a namedtuple, ``collections.Counter``, an ``IntEnum``) is encoded
as the builtin value it holds, read through the builtin type's own methods, so an overridden ``__eq__``,
``__iter__`` or ``__str__`` does not change what is compared. Floats keep their exact bits (``float.hex``: nan,
inf and -0.0 survive). Any iterator (a generator, ``map``, ``zip``, ``filter``, the program's own class with
``__next__``) is drained and decodes to a one-shot iterator over its items: ``tuple(it)`` gives the same tuple,
``it == [1, 2]`` is False as for the generator. Left out: every other type (``collections.deque``, ``array``,
the program's own classes that are no iterators): not encodable.

Format: JSON arrays ``[tag, payload]``: ``["n"]`` None, ``["b", 0|1]``, ``["i", hex]``, ``["f", float.hex]``,
``["c", re, im]``, ``["s", hex of UTF-8]``, ``["y", hex]`` bytes, ``["l"|"t"|"S"|"F", [items]]`` list / tuple / set /
frozenset (set items in a canonical order), ``["d", [[key, value], ...]]``, ``["I", [items]]`` an iterator,
``["K"|"W", [items]]`` dict keys / values view, ``["E", [[key, value], ...]]`` dict items view, ``["r", start, stop,
step]`` a range (hex), ``["q", numerator, denominator]`` a Fraction (hex), ``["m", str]`` a Decimal.
"""

import sys

#: Deepest nesting encoded or decoded (a self-containing list is not encodable).
MAX_DEPTH = 100
#: Longest encoded value, in characters.
MAX_TEXT = 1 << 20
#: Set, frozenset and dict elements (dict views included) decoded for one program (one :class:`Budget`).
MAX_HASHED = 10_000
#: Elements of one set or dict that may share a hash value.
MAX_SAME_HASH = 8
#: Hex digits of a Fraction's numerator or denominator (normalising it takes quadratic time in their length).
MAX_RATIONAL = 4096


class Unencodable(TypeError):
    """The value is not made of the encodable types (or nests deeper than :data:`MAX_DEPTH`)."""


class TooLarge(ValueError):
    """A value beyond the caps (:data:`MAX_TEXT`, :data:`MAX_HASHED`, :data:`MAX_SAME_HASH`, :data:`MAX_RATIONAL`)."""


class Budget:
    """What the values of one program may still cost the decoder: ``hashed`` set/frozenset/dict elements."""

    def __init__(self, hashed=MAX_HASHED):
        self.hashed = hashed


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
_KEYS, _VALUES, _ITEMS = type({}.keys()), type({}.values()), type({}.items())


def _spend(room, n):
    room[0] -= n
    if room[0] < 0:
        raise TooLarge("longer than %d characters encoded" % MAX_TEXT)


def _hex(n, room, limit=None, _type=type, _issubclass=issubclass):
    """An integer's hex digits (an int subclass: the int it holds), refused beyond the room left or ``limit``."""
    if _type(n) is not int:
        if not _issubclass(_type(n), int):
            raise Unencodable("not an integer")
        n = int.__int__(n)
    digits = (int.bit_length(n) + 3) // 4
    if limit is not None and digits > limit:
        raise TooLarge("more than %d hex digits" % limit)
    _spend(room, digits)
    return int.__format__(n, "x")


def _text(v, depth, room, _type=type, _issubclass=issubclass, _join=",".join, _sorted=sorted):
    if depth > MAX_DEPTH:
        raise Unencodable("nested deeper than %d" % MAX_DEPTH)
    _spend(room, 8)
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
            return _other(v, t, depth, room)
    if t is int:
        return '["i","%s"]' % _hex(v, room)
    if t is float:
        return '["f","%s"]' % float.hex(v)
    if t is complex:
        return '["c","%s","%s"]' % (float.hex(v.real), float.hex(v.imag))
    if t is str:  # hex of the UTF-8 bytes: no escaping, and lone surrogates survive
        _spend(room, 2 * str.__len__(v))
        return '["s","%s"]' % str.encode(v, "utf-8", "surrogatepass").hex()
    if t is bytes:
        _spend(room, 2 * bytes.__len__(v))
        return '["y","%s"]' % bytes.hex(v)
    d = depth + 1
    if t is list or t is tuple:
        return '["%s",[%s]]' % ("l" if t is list else "t", _join([_text(x, d, room) for x in v]))
    if t is dict:
        return '["d",[%s]]' % _pairs(dict.items(v), d, room)
    # a canonical order: equal sets encode to equal text
    return '["%s",[%s]]' % ("S" if t is set else "F", _join(_sorted([_text(x, d, room) for x in v])))


def _pairs(items, depth, room, _join=",".join):
    return _join(["[%s,%s]" % (_text(k, depth, room), _text(x, depth, room)) for k, x in items])


def _other(v, t, depth, room, _issubclass=issubclass, _join=",".join, _getattr=getattr, _modules=sys.modules):
    """The standard library's exact types (range, dict views, Fraction, Decimal) and iterators."""
    d = depth + 1
    if t is range:
        return '["r","%s","%s","%s"]' % (_hex(v.start, room), _hex(v.stop, room), _hex(v.step, room))
    if t is _KEYS or t is _VALUES:
        return '["%s",[%s]]' % ("K" if t is _KEYS else "W", _join([_text(x, d, room) for x in v]))
    if t is _ITEMS:
        return '["E",[%s]]' % _pairs(v, d, room)
    fractions, decimal = _modules.get("fractions"), _modules.get("decimal")
    if fractions is not None and _issubclass(t, fractions.Fraction):
        p = fractions.Fraction.numerator.fget(v), fractions.Fraction.denominator.fget(v)
        return '["q","%s","%s"]' % (_hex(p[0], room, MAX_RATIONAL), _hex(p[1], room, MAX_RATIONAL))
    if decimal is not None and _issubclass(t, decimal.Decimal):
        s = decimal.Decimal.__str__(v)
        _spend(room, str.__len__(s))
        return '["m","%s"]' % s
    step = _getattr(t, "__next__", None)
    if step is None:
        raise Unencodable("cannot encode a %s" % t.__name__)
    items = []
    while True:  # drained here, with the room spent as it goes: an endless generator is cut by the cap
        try:
            x = step(v)
        except StopIteration:
            break
        items.append(_text(x, d, room))
    return '["I",[%s]]' % _join(items)


def encode(value) -> str:
    """One line of ASCII JSON holding ``value``; raises :class:`Unencodable` for anything else, :class:`TooLarge`
    beyond :data:`MAX_TEXT` characters.

    Written without the ``json`` module (its import would cost every sandboxed program ~5 ms). Example:
    ``encode((1, "a"))`` → ``'["t",[["i","1"],["s","61"]]]'``.
    """
    room = [MAX_TEXT]
    try:
        text = _text(value, 0, room)
    except RecursionError:
        raise Unencodable("nested too deeply") from None
    if len(text) > MAX_TEXT:
        raise TooLarge("longer than %d characters encoded" % MAX_TEXT)
    return text


def _hashable(items, budget):
    """``items``, once it is known that hashing them into a set or dict costs linear time."""
    budget.hashed -= len(items)
    if budget.hashed < 0:
        raise TooLarge("more than %d set/dict elements" % MAX_HASHED)
    hashes = sorted([hash(x) for x in items])
    run = 1
    for k in range(1, len(hashes)):
        run = run + 1 if hashes[k] == hashes[k - 1] else 1
        if run > MAX_SAME_HASH:
            raise TooLarge("more than %d set/dict elements share a hash" % MAX_SAME_HASH)
    return items


def _int(x, limit=MAX_TEXT):
    if type(x) is not str:
        raise ValueError("an integer is not hex text")
    if len(x) > limit + 1:  # + a sign
        raise TooLarge("an integer of more than %d hex digits" % limit)
    return int(x, 16)


def _untag(x, depth, budget):
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
        if tag == "m":
            import decimal

            return decimal.Decimal(x[1])
    if tag == "c" and n == 3 and type(x[1]) is str and type(x[2]) is str:
        return complex(float.fromhex(x[1]), float.fromhex(x[2]))
    if tag == "q" and n == 3:
        import fractions

        num, den = _int(x[1], MAX_RATIONAL), _int(x[2], MAX_RATIONAL)
        if den <= 0:
            raise ValueError("a fraction's denominator must be positive")
        return fractions.Fraction(num, den)
    if tag == "r" and n == 4:
        return range(_int(x[1]), _int(x[2]), _int(x[3]))
    if n == 2 and type(x[1]) is list:
        d = depth + 1
        if tag in ("d", "E"):
            pairs = []
            for p in x[1]:
                if type(p) is not list or len(p) != 2:
                    raise ValueError("a dict item is not a [key, value] pair")
                pairs.append((_untag(p[0], d, budget), _untag(p[1], d, budget)))
            _hashable([k for k, _ in pairs], budget)
            return dict(pairs) if tag == "d" else dict(pairs).items()
        items = [_untag(i, d, budget) for i in x[1]]
        if tag == "l":
            return items
        if tag == "t":
            return tuple(items)
        if tag == "I":
            return iter(items)
        if tag == "W":
            return dict(enumerate(items)).values()
        if tag == "S":
            return set(_hashable(items, budget))
        if tag == "F":
            return frozenset(_hashable(items, budget))
        if tag == "K":
            return dict.fromkeys(_hashable(items, budget)).keys()
    raise ValueError("bad tagged value %r" % (tag,))


def decode(text: str, budget: Budget | None = None):
    """The value that :func:`encode` wrote. Raises ValueError for anything malformed, :class:`TooLarge` (a
    ValueError) beyond the caps; ``budget``: the set/dict elements left to the program whose values these are
    (default: :data:`MAX_HASHED` for this value alone).

    Example: ``decode('["t",[["i","1"],["s","61"]]]')`` → ``(1, 'a')``.
    """
    import json

    if len(text) > MAX_TEXT:
        raise TooLarge("longer than %d characters encoded" % MAX_TEXT)
    try:
        return _untag(json.loads(text), 0, Budget() if budget is None else budget)
    except (TypeError, RecursionError, OverflowError, UnicodeDecodeError, ArithmeticError) as e:
        # unhashable items, deep JSON, a malformed Decimal
        raise ValueError("bad encoded value: %s" % e) from None
