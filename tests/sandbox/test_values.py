"""The value encoding across the sandbox boundary (r1.sandbox.values) and the bootstrap's probes.

Run: pytest tests/sandbox/test_values.py -q   (~2 s: a few sandboxed programs)
"""

import collections
import decimal
import enum
import fractions
import math
import time

import pytest

from r1.sandbox import run
from r1.sandbox.values import (
    MAX_DEPTH, MAX_HASHED, MAX_SAME_HASH, MAX_TEXT, Budget, TooLarge, Unencodable, decode, encode,
)

PLAIN = [
    None, True, False, 0, -5, 10**5000, 1.5, -0.0, float("inf"), 1 + 2j, "a\udc80b\n\"\\é😀", "", b"\x00\xff",
    [1, [2]], (1,), {1: {2: 3}}, {3, 1, 2}, frozenset({"a"}), (), {}, set(), [(1, {"k": frozenset({2})})],
]


@pytest.mark.parametrize("value", PLAIN, ids=[f"{type(v).__name__}{i}" for i, v in enumerate(PLAIN)])
def test_round_trip_keeps_value_and_exact_type(value):
    back = decode(encode(value))
    assert type(back) is type(value) and back == value
    assert "\n" not in encode(value) and encode(value).isascii()


def test_nan_and_canonical_sets():
    assert math.isnan(decode(encode(float("nan"))))
    assert encode({"b", "a", 3}) == encode({3, "a", "b"})


class AlwaysEqualStr(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


class AlwaysEqualInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class Lies:
    __class__ = property(lambda self: int)

    def __eq__(self, other):
        return True


class Color(enum.IntEnum):
    RED = 3


@pytest.mark.parametrize(
    "value, plain",
    [
        (AlwaysEqualStr("wrong"), "wrong"),  # the value it holds, not what its __eq__ says
        (AlwaysEqualInt(7), 7),
        (collections.namedtuple("P", "a b")(1, 2), (1, 2)),
        (collections.Counter("aab"), {"a": 2, "b": 1}),
        (collections.OrderedDict(x=1), {"x": 1}),
        (Color.RED, 3),
    ],
)
def test_subclasses_are_their_builtin_value(value, plain):
    back = decode(encode(value))
    assert type(back) is type(plain) and back == plain


@pytest.mark.parametrize("value", [object(), Lies(), [object()], {1: object()}, len, iter([object()])])
def test_other_types_are_not_encodable(value):
    with pytest.raises(Unencodable):
        encode(value)


EXACT = [
    fractions.Fraction(-7, 3), fractions.Fraction(10**50, 3), decimal.Decimal("1.50"), decimal.Decimal("-Infinity"),
    range(2, -10, -3), range(0), {"a": 1, 2: None}.keys(), {"a": [1]}.items(), {1: (2,)}.values(),
]


@pytest.mark.parametrize("value", EXACT, ids=[f"{type(v).__name__}{i}" for i, v in enumerate(EXACT)])
def test_exact_types_of_the_standard_library(value):
    """Fractions, decimals, ranges and dict views come back as themselves: a correct program returning one passes
    where the original ``==`` would say so (``Fraction(1, 2) == 0.5``, ``{1: 2}.keys() == {1}``)."""
    back = decode(encode(value))
    assert type(back) is type(value) and str(back) == str(value)
    if not isinstance(value, type({}.values())):  # dict_values compare by identity
        assert back == value


def test_fraction_decimal_and_views_compare_as_in_python():
    assert decode(encode(fractions.Fraction(1, 2))) == 0.5
    assert decode(encode(decimal.Decimal("0.5"))) == 0.5 and decode(encode(decimal.Decimal("0.1"))) != 0.1
    assert decode(encode({1: 2, 3: 4}.keys())) == {1, 3} and decode(encode({1: 2}.keys())) != [1]
    assert decode(encode({1: 2}.items())) == {(1, 2)}


def test_iterators_are_one_shot_iterators_of_their_items():
    """Generators, map/zip/filter and other iterators decode to an iterator over the same items: ``tuple(...)`` of it
    is the original's, ``== [..]`` is False as for the generator itself."""
    squares = [0, 1, 4, 9]
    for it, items in (((x * x for x in range(4)), squares), (map(abs, [0, -1, -4, -9]), squares),
                      (iter(squares), squares), (zip("ab", [1, 2]), [("a", 1), ("b", 2)])):
        back = decode(encode(it))
        assert type(back) is type(iter([])) and back != items
        assert list(back) == items and list(back) == []


def test_probes_report_iterators_fractions_and_decimals():
    """In the sandbox (the encoder embedded in the bootstrap): an endless generator is cut by the cap, not the
    timeout."""
    program = ("from fractions import Fraction\nfrom decimal import Decimal\n"
               "def f():\n    return (Fraction(1, 3), Decimal('2.5'), range(3), {1: 2}.keys())\n"
               "def g():\n    return (i for i in [1, 2])\n"
               "def endless():\n    while True:\n        yield 'x'\n")
    probes = [("call", "f", [], {}), ("call", "g", [], {}), ("call", "endless", [], {})]
    r = run(program, tests=probes, timeout_s=20, memory_mb=256)
    assert r.tests == ["value", "value", "error:TooLarge"] and r.wall_s < 10
    assert decode(r.values[0]) == (fractions.Fraction(1, 3), decimal.Decimal("2.5"), range(3), {1: 2}.keys())
    assert list(decode(r.values[1])) == [1, 2]


def test_caps_cut_endless_and_huge_values():
    """An endless generator or a value longer than MAX_TEXT is refused (TooLarge) when encoded, without hanging."""
    def endless():
        while True:
            yield 1
    t = time.monotonic()
    for value in (endless(), "x" * MAX_TEXT, [1] * MAX_TEXT, 16 ** MAX_TEXT, fractions.Fraction(3 ** 40000, 2)):
        with pytest.raises(TooLarge):
            encode(value)
    assert time.monotonic() - t < 2
    encode(list(range(10000)))  # well under the caps


def test_decode_refuses_what_would_stall_the_grader():
    """Integers hash without randomisation, so a program can write a set of colliding items (building it costs
    O(n^2)): too many items sharing a hash, more set/dict elements than a program's budget, or a text longer than
    MAX_TEXT are refused (TooLarge), quickly."""
    m = (1 << 61) - 1
    colliding = ['["i","%x"]' % (k * m) for k in range(1, MAX_SAME_HASH + 2)]
    fine = ",".join(colliding[:MAX_SAME_HASH])
    assert len(decode('["S",[%s]]' % fine)) == MAX_SAME_HASH  # hash-equal values are legal, a few of them
    t = time.monotonic()
    for text in ('["S",[%s]]' % ",".join(colliding), '["d",[%s]]' % ",".join('[%s,["n"]]' % c for c in colliding),
                 '["l",[["K",[%s]]]]' % ",".join(colliding), '["s","%s"]' % ("61" * MAX_TEXT),
                 '["S",[%s]]' % ",".join('["i","%x"]' % k for k in range(MAX_HASHED + 1))):
        with pytest.raises(TooLarge):
            decode(text)
    budget = Budget()  # one program's values share a budget of set/dict elements
    half = '["S",[%s]]' % ",".join('["i","%x"]' % k for k in range(MAX_HASHED // 2 + 1))
    decode(half, budget)
    with pytest.raises(TooLarge):
        decode(half, budget)
    assert time.monotonic() - t < 2


def test_cycles_and_depth():
    cyc = []
    cyc.append(cyc)
    with pytest.raises(Unencodable):
        encode(cyc)
    deep = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(Unencodable):
        encode(deep)


@pytest.mark.parametrize(
    "text",
    ["", "[", "1", '["x"]', '["b",2]', '["i","zz"]', '["s","6"]', '["S",[["l",[]]]]', '["d",[[["l",[]],["n"]]]]',
     '["d",[["n"]]]', "[" * 100000, '["l",' * 150 + '["n"]' + "]" * 150],
)
def test_decode_rejects_anything_malformed(text):
    with pytest.raises(ValueError):
        decode(text)


def test_probes_report_values_not_verdicts():
    """Probes call or evaluate in the program's namespace; the values come back encoded, errors as their type."""
    program = "def f(x, k=1):\n    return [x * k, str(x)]\nclass A:\n    pass\n"
    probes = [("call", "f", [3], {"k": 2}), ("eval", "g(4)", {"g": "f"}), ("eval", "A()", {}),
              ("call", "missing", [], {}), ("eval", "f(1) == 2", {})]
    r = run(program, tests=probes, timeout_s=5, memory_mb=256)
    assert r.tests == ["value", "value", "error:Unencodable", "error:NameError", "value"]
    assert [decode(v) if v else None for v in r.values] == [[6, "3"], [4, "4"], None, None, False]
    assert r.status == "runtime_error" and r.completed


def test_program_lines_cannot_claim_a_setup_error_or_conflict_silently():
    """After the bootstrap's "ready" line, R/X lines are the program's own: ignored; two reports of one item
    conflict (an error, never a pass)."""
    forge = (
        "import sys, os\nf = sys._getframe(0)\nwhile 'cfg' not in f.f_locals:\n    f = f.f_back\n"
        "tag, fd = f.f_locals['cfg']['nonce'].encode(), f.f_locals['st_fd']\n"
        "os.write(fd, tag + b' X forged\\n' + tag + b' V 0 [\"b\",1]\\n')\n"
        "def f():\n    return False\n"
    )
    r = run(forge, tests=[("call", "f", [], {})], timeout_s=5, memory_mb=256)
    assert r.status != "sandbox_error" and r.tests == ["error:Conflict"] and r.values == [None]
