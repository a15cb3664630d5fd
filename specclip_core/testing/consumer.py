"""A slow consumer of a stream read by worker processes: how many threads it was given per batch."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path


def threads_of_a_slow_consumer(paths: Sequence[str | Path], modality: str, chunk: int, workers: int, pause: float, threads: int = 3) -> list[tuple[int, int]]:
    """(rows, torch threads) of each batch of ``paths`` read by ``workers`` processes in batches of
    ``chunk``, the consumer pausing ``pause`` seconds per batch (a slow head), with ``threads``
    threads before reading (4 CPUs assumed); the threads are as before afterwards."""
    import torch

    from specclip_core import threads as pools
    from specclip_core.components import get_modality
    from specclip_core.data.stream import SpectraStream

    kept = pools.available_cpus, pools._applied, torch.get_num_threads()
    pools.available_cpus, pools._applied = (lambda: 4), None
    try:
        pools.use_threads(threads)
        seen = []
        for batch in SpectraStream(list(paths), get_modality(modality), chunk=chunk, progress=False, workers=workers):
            seen.append((len(batch.files), torch.get_num_threads()))
            time.sleep(pause)
        return seen
    finally:
        pools.available_cpus, pools._applied = kept[0], None
        pools.use_threads(kept[2])
