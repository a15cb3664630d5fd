"""How many CPU threads a process computes with: one number for torch and every BLAS/OpenMP pool.

Left alone, torch, numpy's and scipy's OpenBLAS, faiss and scikit-learn's OpenMP each start a pool of
one thread per core; beside each other (or beside another job) they fight for the cores. The number
comes from, in order: the caller (``--threads``, a spec's ``threads``), ``SPECCLIP_THREADS``, and the
CPUs this process may run on (shared between the processes of one torchrun node); it is never more
than those CPUs.
"""

from __future__ import annotations

import os

from specclip_core.errors import SpecCLIPError

ENV = "SPECCLIP_THREADS"
POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_applied: int | None = None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), divided among the processes of a torchrun node."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def resolve_threads(requested: int | None = None) -> int:
    """The thread count to use: ``requested``, else ``SPECCLIP_THREADS``, else :func:`available_cpus`; at most the latter."""
    limit = available_cpus()
    if requested is None and os.environ.get(ENV, "").strip():
        try:
            requested = int(os.environ[ENV])
        except ValueError:
            raise SpecCLIPError(f"{ENV}={os.environ[ENV]!r}: expected a whole number of threads") from None
    if requested is not None and requested < 1:
        raise SpecCLIPError(f"threads must be at least 1, got {requested}")
    return min(requested or limit, limit)


def use_threads(requested: int | None = None) -> int:
    """Set torch's threads and every loaded BLAS/OpenMP pool to :func:`resolve_threads` (and the
    environment, for libraries loaded later and child processes); return the number."""
    global _applied
    n = resolve_threads(requested)
    if n == _applied:
        return n
    for name in POOL_VARIABLES:
        os.environ[name] = str(n)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # only possible before torch's first parallel work; then it stays as it was
        pass
    threadpool_limits(n)
    _applied = n
    return n
