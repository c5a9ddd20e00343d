"""An immutable mapping whose updates copy only what they touch.

The directory snapshot must be replaced atomically (readers on the SIP loop
grab `directory.snapshot` and never see a half-applied change) yet updating
one device among 10k must not copy 10k entries. `FrozenMap` splits its items
over a fixed number of shard dicts; `evolve()` copies the tuple of shard
references plus only the shards whose keys change, and shares the rest with
the previous version. Lookups cost one extra index operation over a dict.

Never mutate a shard after construction: they are shared between versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from typing import Any, Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

SHARD_BITS = 8
_SHARDS = 1 << SHARD_BITS
_MASK = _SHARDS - 1


class FrozenMap(Mapping[K, V], Generic[K, V]):
    __slots__ = ("_len", "_shards")

    _shards: tuple[dict[K, V], ...]
    _len: int

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        shards: list[dict[K, V]] = [{} for _ in range(_SHARDS)]
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            shards[hash(key) & _MASK][key] = value
        self._shards = tuple(shards)
        self._len = sum(len(s) for s in shards)

    @classmethod
    def _from_parts(cls, shards: tuple[dict[K, V], ...], length: int) -> FrozenMap[K, V]:
        obj = cls.__new__(cls)
        obj._shards = shards
        obj._len = length
        return obj

    def __getitem__(self, key: K) -> V:
        return self._shards[hash(key) & _MASK][key]

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V | D, /) -> V | D: ...
    def get(self, key: K, default: Any = None, /) -> Any:
        return self._shards[hash(key) & _MASK].get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._shards[hash(key) & _MASK]

    def __iter__(self) -> Iterator[K]:
        return chain.from_iterable(self._shards)

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"FrozenMap({self._len} items)"

    def evolve(self, set_items: Mapping[K, V] | None = None,
               delete: Iterable[K] = ()) -> FrozenMap[K, V]:
        """A new map with `set_items` stored and `delete` keys removed (missing
        keys ignored); untouched shards are shared with `self`."""
        set_items = set_items or {}
        delete = [k for k in delete if k not in set_items]
        if not set_items and not delete:
            return self
        shards = list(self._shards)
        copied: dict[int, dict[K, V]] = {}
        length = self._len

        def shard_for(key: K) -> dict[K, V]:
            i = hash(key) & _MASK
            shard = copied.get(i)
            if shard is None:
                shard = copied[i] = dict(shards[i])
                shards[i] = shard
            return shard

        for key, value in set_items.items():
            shard = shard_for(key)
            length += key not in shard
            shard[key] = value
        for key in delete:
            if key in self._shards[hash(key) & _MASK]:
                shard = shard_for(key)
                if key in shard:
                    del shard[key]
                    length -= 1
        return FrozenMap._from_parts(tuple(shards), length)

    def shares_shards_with(self, other: FrozenMap[Any, Any]) -> int:
        """How many shard dicts are the very same object in both maps (for tests
        and diagnostics: proves an update copied only what it touched)."""
        return sum(a is b for a, b in zip(self._shards, other._shards, strict=True))
