"""The supervisor's tables of sockets (listen.py's records and taints),
bounded: a table is pruned of the entries no longer needed (of sockets
gone, or no longer listening) only when it has doubled since it was last
pruned, so it stays within twice what is needed (or its floor,
MAX_ENTRIES) and each insert pays the pruning's lookups once, amortized,
however many sockets live."""

from __future__ import annotations

MAX_ENTRIES = 8192


class Records(dict):
    def __init__(self, floor: int = MAX_ENTRIES) -> None:
        super().__init__()
        self.floor = self.limit = floor

    def put(self, key, value, still_live) -> None:
        """still_live() gives keep(key, value), asked only when pruning;
        its errors propagate (the entry is then not put)."""
        if len(self) >= self.limit:
            keep = still_live()
            for stale in [k for k, v in self.items() if not keep(k, v)]:
                del self[stale]
            self.limit = max(self.floor, 2 * len(self))
        self[key] = value
