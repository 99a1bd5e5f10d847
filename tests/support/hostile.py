"""Hypothesis strategies for hostile input: what a client can send that Postgres or
the interpreter cannot take (NUL characters, non-finite and huge numbers, deep
nesting, long strings), mixed with ordinary values so it lands in many places."""

from __future__ import annotations

import math
import string
from typing import Any

from hypothesis import strategies as st


def _with_nul(s: str) -> str:
    middle = len(s) // 2
    return s[:middle] + "\x00" + s[middle:]


nul_text = st.text(max_size=12).map(_with_nul)
long_text = st.integers(min_value=256, max_value=20_000).map(lambda n: "x" * n)
# what json.dumps writes as NaN/Infinity literals, or as 4,000 digits
odd_numbers = st.sampled_from(
    [math.inf, -math.inf, math.nan, 10**4000, -(10**4000), 1e308, -1e308, 2**64, 5e-324]
)
hostile_text = st.one_of(nul_text, long_text)
# ASCII only: a header value must encode as latin-1 on the way out
_VISIBLE = string.ascii_letters + string.digits + string.punctuation
hostile_header = st.one_of(
    st.text(_VISIBLE, max_size=8).map(_with_nul), long_text.map(lambda s: s[:2000])
)


def nest(depth: int, leaf: Any = "leaf") -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


deep_values = st.integers(min_value=33, max_value=300).map(nest)

hostile_json: st.SearchStrategy[Any] = st.one_of(
    deep_values,
    st.recursive(
        st.one_of(hostile_text, odd_numbers, st.text(max_size=8), st.integers(), st.none()),
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.one_of(st.text(max_size=6), nul_text), children, max_size=3),
        ),
        max_leaves=6,
    ),
)

# JSON texts that json.dumps cannot write: numbers past float range, nesting past
# the recursion limit, and the bare literals
raw_bodies = st.one_of(
    st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "9" * 5000]).map(
        lambda n: '{"input": {"data": N, "name": N}}'.replace("N", n)
    ),
    st.integers(min_value=900, max_value=5000).map(
        lambda d: '{"input": ' + "[" * d + "]" * d + "}"
    ),
)
