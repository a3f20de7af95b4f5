"""The value encoding across the sandbox boundary (r1.sandbox.values) and the bootstrap's probes.

Run: pytest tests/sandbox/test_values.py -q   (~2 s: a few sandboxed programs)
"""

import collections
import enum
import math

import pytest

from r1.sandbox import run
from r1.sandbox.values import MAX_DEPTH, Unencodable, decode, encode

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


@pytest.mark.parametrize("value", [object(), Lies(), range(3), iter([]), [object()], {1: object()}, len])
def test_other_types_are_not_encodable(value):
    with pytest.raises(Unencodable):
        encode(value)


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
