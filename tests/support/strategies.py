"""Hypothesis strategies shared by the decoder property tests."""

from __future__ import annotations

from hypothesis import strategies as st

# Any JSON value, small: scalars, lists and objects nested a few levels.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
