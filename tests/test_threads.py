"""The thread count: caller, then SPECCLIP_THREADS, then the CPUs available; never more than those."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from specclip_core import threads
from specclip_core.errors import SpecCLIPError


def test_the_thread_count_comes_from_the_caller_the_environment_or_the_free_cpus(monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    monkeypatch.setattr(threads, "_busy", None)
    monkeypatch.setattr(threads, "busy_cpus", lambda: 0)
    monkeypatch.delenv(threads.ENV, raising=False)
    assert threads.resolve_threads() == 4
    monkeypatch.setattr(threads, "busy_cpus", lambda: 3)
    assert threads.resolve_threads() == 4, "measured once per process"
    monkeypatch.setattr(threads, "_busy", 3)
    assert threads.resolve_threads() == 1, "beside three busy CPUs, one thread"
    monkeypatch.setattr(threads, "_busy", 9)
    assert threads.resolve_threads() == 1, "never fewer than one"
    assert threads.resolve_threads(3) == 3, "asked for, whatever the load"
    monkeypatch.setenv(threads.ENV, "2")
    assert threads.resolve_threads() == 2 and threads.resolve_threads(3) == 3, "the caller wins over the environment"
    assert threads.resolve_threads(64) == 4, "never more than the CPUs"
    monkeypatch.setenv(threads.ENV, "two")
    with pytest.raises(SpecCLIPError, match="SPECCLIP_THREADS='two'"):
        threads.resolve_threads()
    with pytest.raises(SpecCLIPError, match="at least 1"):
        threads.resolve_threads(0)


def test_use_threads_sets_torch_and_every_loaded_pool():
    code = """
import json, numpy, torch
from threadpoolctl import threadpool_info
from specclip_core.threads import use_threads
n = use_threads(1)
print(json.dumps({"n": n, "torch": torch.get_num_threads(), "pools": sorted({p["num_threads"] for p in threadpool_info()})}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"n": 1, "torch": 1, "pools": [1]}


def test_busy_cpus_sees_a_cpu_bound_job():
    job = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        __import__("time").sleep(0.5)
        assert threads.busy_cpus(0.5) >= 1
    finally:
        job.kill()
        job.wait()


def test_busy_cpus_after_a_watch_leaves_out_this_process_and_does_not_sleep(monkeypatch):
    job = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time = __import__("time")
        time.sleep(0.5)
        monkeypatch.setattr(threads, "_watch", None)
        threads.watch_cpus()
        ends = time.process_time() + 0.6
        while time.process_time() < ends:  # this process's own work: not another job's
            pass
        started = time.monotonic()
        busy = threads.busy_cpus()
        assert time.monotonic() - started < 0.1, "the start-up was the measurement: no sleep"
        assert 1 <= busy <= max(1, (os.cpu_count() or 1) - 1), busy
    finally:
        job.kill()
        job.wait()


def test_a_resumed_run_uses_the_threads_it_started_with(tmp_path, monkeypatch):
    from specclip_core import runner
    from specclip_core.rundir import THREADS
    from specclip_core.spec import validate_spec

    monkeypatch.delenv(threads.ENV, raising=False)
    spec = validate_spec({"name": "t", "stages": {"p": {"kind": "pretrain", "modality": "toy", "data": {"store": "x.zarr"}}}})
    (tmp_path / THREADS).write_text('{"threads": 1}')
    assert runner._threads_for(spec, tmp_path, resume=True) == 1
    assert runner._threads_for(spec, tmp_path, resume=False) is None, "a new run chooses again"
    monkeypatch.setenv(threads.ENV, "2")
    assert runner._threads_for(spec, tmp_path, resume=True) is None, "SPECCLIP_THREADS wins"


def test_beside_reader_processes_the_parent_computes_with_fewer_threads_and_gets_them_back(monkeypatch):
    import torch

    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    monkeypatch.setattr(threads, "_applied", None)
    before = torch.get_num_threads()
    try:
        threads.use_threads(3)
        with threads.threads_beside(2) as beside:
            assert torch.get_num_threads() == 1, "it starts with every worker busy"
            assert beside(1) == torch.get_num_threads() == 2
            assert beside(0) == torch.get_num_threads() == 3, "workers waiting for the parent leave their CPUs"
            assert beside(5) == 1, "at most the workers it was given"
        assert torch.get_num_threads() == 3
        with threads.threads_beside(8):
            assert torch.get_num_threads() == 1, "never fewer than one"
    finally:
        threads.use_threads(before)


LATE_TORCH = """
import sys
from specclip_core import threads
threads.available_cpus = lambda: 2
threads.use_threads(1)
before = "torch" in sys.modules
import torch
read = torch.get_num_threads()
threads.use_threads(1)
print(before, read, torch.get_num_threads(), threads.current_threads())
"""


def test_threads_set_before_torch_is_imported_are_the_ones_torch_computes_with():
    # predict forks its readers before torch is loaded: the number chosen then must hold for torch
    done = subprocess.run([sys.executable, "-c", LATE_TORCH], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr
    imported_before, read_at_import, after, current = done.stdout.split()
    assert imported_before == "False", "use_threads imports no torch"
    assert (read_at_import, after, current) == ("1", "1", "1")
