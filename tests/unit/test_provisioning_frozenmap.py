"""FrozenMap behaves like a dict, never changes once built, and shares untouched shards."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from provisioning.frozenmap import FrozenMap

keys = st.one_of(st.integers(-50, 50), st.text(max_size=3), st.tuples(st.integers(0, 5), st.text(max_size=2)))
ops = st.lists(st.tuples(st.dictionaries(keys, st.integers(), max_size=5), st.lists(keys, max_size=5)),
               max_size=20)


@given(initial=st.dictionaries(keys, st.integers(), max_size=30), steps=ops)
def test_evolve_matches_a_dict_model_and_old_versions_stay_put(
        initial: dict[object, int], steps: list[tuple[dict[object, int], list[object]]]) -> None:
    fm: FrozenMap[object, int] = FrozenMap(initial)
    model = dict(initial)
    history = [(fm, dict(model))]
    for sets, deletes in steps:
        fm = fm.evolve(sets, deletes)
        for k in deletes:
            if k not in sets:
                model.pop(k, None)
        model.update(sets)
        history.append((fm, dict(model)))
    for version, expected in history:
        assert dict(version) == expected
        assert len(version) == len(expected)
        for k in expected:
            assert k in version and version[k] == expected[k] and version.get(k) == expected[k]
    assert fm.get("definitely-absent-key") is None
    assert fm.get("definitely-absent-key", 7) == 7


def test_one_update_copies_one_shard() -> None:
    big = FrozenMap((f"user{i}", i) for i in range(10_000))
    shards = len(big._shards)
    updated = big.evolve({"user42": -1})
    assert updated["user42"] == -1 and big["user42"] == 42
    assert updated.shares_shards_with(big) == shards - 1
    removed = updated.evolve(delete=["user7"])
    assert "user7" not in removed and "user7" in updated and len(removed) == 9_999
    assert removed.shares_shards_with(updated) == shards - 1
    assert big.evolve() is big
