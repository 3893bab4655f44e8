"""The long soak (issue 12): bulk data both ways through one connection while both sides rekey, with 32
channels of mixed sizes beside it, every byte checked, and the client's memory sampled through the run.

The short form runs in the suite; the 10 GiB form is ``slow`` (``--run-slow``) and is the one whose figures
go to the notes. Memory: the resident set is sampled from ``/proc/self/statm`` as bytes move; once the warm-up
has moved (the first GiB in the long form), the samples may not grow by more than :data:`RSS_GROWTH_LIMIT`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import trio
from test_integration import connect
from test_rekey_soak import Progress, rekey_at_random_moments, soak_deadline, transfer

from trissh.testing import SSHServer, start_sshd

MiB = 1024 * 1024
GiB = 1024 * MiB

#: How much the resident set may grow after the warm-up: a few windows' worth of buffers and allocator slack.
RSS_GROWTH_LIMIT = 24 * MiB
SIDE_CHANNELS = 32


@dataclass(frozen=True)
class Soak:
    each_way: int  # on the main channel, each way
    side_max: int  # the largest side channel, each way
    warm_up: int  # bytes moved before the RSS baseline is taken
    rekeys: int  # rekey() calls from our side


SOAKS = [
    pytest.param(Soak(64 * MiB, 2 * MiB, 48 * MiB, 8), id="short"),
    pytest.param(Soak(10 * GiB, 64 * MiB, GiB, 200), id="10GiB", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def soak_sshd() -> Iterator[SSHServer]:
    """sshd rekeying after every MiB or 5 seconds, whichever comes first."""
    with start_sshd(extra_config=["RekeyLimit 1M 5s"]) as server:
        yield server


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class RssSamples:
    """(bytes moved, resident bytes) pairs, one per sampled moment."""

    samples: list[tuple[int, int]] = field(default_factory=list)

    async def sample(self, progress: Progress, every: int) -> None:
        mark = 0
        while True:
            await progress.wait_for(mark)
            self.samples.append((progress.total, resident_bytes()))
            mark = progress.total + every

    def growth_after(self, warm_up: int) -> tuple[int, int, int]:
        """(baseline, peak, samples) over the samples taken once ``warm_up`` bytes had moved."""
        after = [rss for moved, rss in self.samples if moved >= warm_up]
        assert len(after) >= 3, f"too few RSS samples after the warm-up: {self.samples}"
        return after[0], max(after), len(after)


@pytest.mark.parametrize("soak", SOAKS)
async def test_soak(soak_sshd: SSHServer, soak: Soak) -> None:
    progress = Progress()
    rss = RssSamples()
    rng = random.Random(12)
    side_sizes = [rng.choice([1, 1000, 64 * 1024, MiB, soak.side_max]) for _ in range(SIDE_CHANNELS)]
    total = 2 * (soak.each_way + sum(side_sizes))
    with soak_deadline(total // 2, progress):
        async with connect(soak_sshd, rekey_bytes=256 * MiB) as conn:
            progress.conn = conn
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rss.sample, progress, max(MiB, total // 200))
                nursery.start_soon(rekey_at_random_moments, conn, progress, total, soak.rekeys, rng)
                async with trio.open_nursery() as channels:
                    channels.start_soon(
                        lambda: transfer(
                            conn, "main", down=soak.each_way, up=soak.each_way, seed=12, progress=progress
                        )
                    )
                    for i, size in enumerate(side_sizes):
                        channels.start_soon(
                            lambda i=i, size=size: transfer(
                                conn, f"side{i}", down=size, up=size, seed=i, progress=progress
                            )
                        )
                nursery.cancel_scope.cancel()  # the sampler and (if any are left) the rekeyer
            kex_count = conn.transport.state.kex_count
    assert progress.total == total, str(progress)
    # sshd rekeys at least every MiB it sends or receives; our rekey() calls add to that.
    assert kex_count >= total // MiB // 2, str(progress)
    baseline, peak, count = rss.growth_after(soak.warm_up)
    start = rss.samples[0][1] / MiB
    print(
        f"soak {total // 2 / MiB:.0f} MiB each way, {kex_count} key exchanges; RSS {start:.1f} MiB at the "
        f"start, {baseline / MiB:.1f} after the warm-up, peak {peak / MiB:.1f} after it ({count} samples)"
    )
    assert peak - baseline <= RSS_GROWTH_LIMIT, (
        f"RSS grew {(peak - baseline) / MiB:.1f} MiB after the warm-up ({baseline / MiB:.1f} -> "
        f"{peak / MiB:.1f} MiB); samples {rss.samples}"
    )
