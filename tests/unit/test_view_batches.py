"""``runner.batches``: how a rebuild cuts the chains' ranges into statements."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from projectors.runner import batches


def test_ranges_of_several_chains_share_a_batch_and_are_cut_at_the_chunk() -> None:
    todo = {"b": (0, 5), "a": (2, 4)}
    assert list(batches(todo, 4)) == [
        [{"chain": "a", "lo": 2, "hi": 4}, {"chain": "b", "lo": 0, "hi": 2}],
        [{"chain": "b", "lo": 2, "hi": 5}],
    ]


@given(
    todo=st.dictionaries(
        st.text(min_size=1, max_size=3),
        st.tuples(st.integers(0, 50), st.integers(0, 50)).map(sorted).map(tuple),
        max_size=5,
    ),
    chunk=st.integers(1, 30),
)
def test_every_entry_is_in_exactly_one_batch_of_at_most_chunk_entries(todo, chunk) -> None:
    covered: dict[str, list[int]] = {}
    for batch in batches(todo, chunk):
        assert 0 < sum(r["hi"] - r["lo"] for r in batch) <= chunk
        for r in batch:
            assert r["lo"] < r["hi"]
            covered.setdefault(r["chain"], []).extend(range(r["lo"] + 1, r["hi"] + 1))
    assert covered == {c: list(range(lo + 1, hi + 1)) for c, (lo, hi) in todo.items() if hi > lo}
