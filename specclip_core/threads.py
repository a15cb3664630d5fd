"""How many CPU threads a process computes with: one number for torch and every BLAS/OpenMP pool.

Left alone, torch, numpy's and scipy's OpenBLAS, faiss and scikit-learn's OpenMP each start a pool of
one thread per core; beside each other (or beside another job) they fight for the cores. The number
comes from, in order: the caller (``--threads``, a spec's ``threads``), ``SPECCLIP_THREADS``, and the
CPUs this process may run on (shared between the processes of one torchrun node) less those that
other work keeps busy when the process starts (measured from ``/proc/stat`` over
:data:`SAMPLE_SECONDS`, or over a command's start-up, its own CPU time taken out; at least one); it is never more than this process's CPUs. On 2 cores beside one
other CPU-bound job, 2 threads spend their time waiting for each other: 1 thread is much faster
(bench/results/quickstart_threads.md).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from specclip_core.errors import SpecCLIPError

ENV = "SPECCLIP_THREADS"
SAMPLE_SECONDS = 0.3
"""How long the CPUs are watched to count the busy ones (once, when a command starts)."""
POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_applied: int | None = None
_applied_torch: int | None = None
_busy: int | None = None
_watch: tuple[tuple[int, int], float, float] | None = None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), divided among the processes of a torchrun node."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs since boot, from /proc/stat (None where there is none)."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(value) for value in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def watch_cpus() -> None:
    """Start watching the CPUs now (a command's first step), so that :func:`busy_cpus` measures over
    the time since, this process's own CPU time taken out, instead of sleeping."""
    global _watch
    before = _cpu_times()
    _watch = None if before is None else (before, time.monotonic(), time.process_time())


def busy_cpus(seconds: float = SAMPLE_SECONDS) -> int:
    """How many of the machine's CPUs other work keeps busy now: the non-idle share of all CPUs, times
    their number, less this process's own use, rounded (0 where it cannot be measured); over
    ``seconds``, or since :func:`watch_cpus` when it was called (waiting only for what is left of
    ``seconds``)."""
    start = _watch or (_cpu_times(), time.monotonic(), time.process_time())
    before, started, own = start
    if before is None:
        return 0
    time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    after, wall = _cpu_times(), time.monotonic() - started
    total = after[1] - before[1] if after else 0
    if total <= 0 or wall <= 0:
        return 0
    busy = (1 - (after[0] - before[0]) / total) * (os.cpu_count() or 1)
    return max(0, round(busy - (time.process_time() - own) / wall))


def free_cpus() -> int:
    """:func:`available_cpus` less :func:`busy_cpus` (measured once per process), at least 1."""
    global _busy
    if _busy is None:
        _busy = busy_cpus()
    return max(1, available_cpus() - _busy)


def resolve_threads(requested: int | None = None) -> int:
    """The thread count to use: ``requested``, else ``SPECCLIP_THREADS``, else :func:`free_cpus`; at
    most :func:`available_cpus`."""
    limit = available_cpus()
    if requested is None and os.environ.get(ENV, "").strip():
        try:
            requested = int(os.environ[ENV])
        except ValueError:
            raise SpecCLIPError(f"{ENV}={os.environ[ENV]!r}: expected a whole number of threads") from None
    if requested is not None and requested < 1:
        raise SpecCLIPError(f"threads must be at least 1, got {requested}")
    return min(requested or free_cpus(), limit)


def use_threads(requested: int | None = None) -> int:
    """Set every loaded BLAS/OpenMP pool and torch's threads to :func:`resolve_threads` (and the
    environment, for libraries loaded later and child processes); return the number. torch's are set
    whenever the number changes and on the first call after torch is imported (this module never
    imports it: predict forks its reader processes before torch is loaded)."""
    global _applied
    n = resolve_threads(requested)
    changed = n != _applied
    if changed:
        for name in POOL_VARIABLES:
            os.environ[name] = str(n)
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
        _applied = n
    if "torch" in sys.modules and (changed or n != _applied_torch):
        _use_torch_threads(n)
    return n


def _use_torch_threads(n: int) -> None:
    """torch's intra- and inter-op threads, set even where torch already reports ``n`` (skipping
    them then, predicting the 100,000 spectra of one table beside two reader processes took ~1.3
    times the CPU)."""
    global _applied_torch
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # only possible before torch's first parallel work; then it stays as it was
        pass
    _applied_torch = n


def current_threads() -> int:
    """The threads this process computes with: torch's where it is imported, else the number last set
    (every CPU it may use when none was)."""
    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    return _applied or available_cpus()


@contextmanager
def threads_beside(workers: int) -> Iterator[Callable[[int], int]]:
    """Share the CPUs with ``workers`` single-threaded worker processes: yields ``beside(busy)``,
    which sets this process's threads to as many as before less the ``busy`` workers (at most
    ``workers``; at least 1 thread) and returns the number; it starts with every worker busy, and
    afterwards the threads are as before. Call it with the workers that still have work: one that
    has finished leaves its CPU free. On 2 cores, 2 torch threads beside 2 busy readers stall at
    every parallel operation for a scheduler slice (an element-wise operation on 512 x 343 values:
    16 ms instead of 0.26 ms)."""
    before = current_threads()

    def beside(busy: int) -> int:
        return use_threads(max(1, before - min(max(busy, 0), workers)))

    try:
        beside(workers)
        yield beside
    finally:
        use_threads(before)
