"""The host gives back what counting the open buffers freed (serve/heap.py).

Each case runs in a fresh Python: the C library's settings are per process and cannot be undone.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from textgen_core.serve.heap import _LIBC

REPO = Path(__file__).resolve().parents[2]

# Four counts of 1 MB of text on a thread, as the host's buffer thread does when buffers change,
# keeping the last table; then the process's private memory in MB.
COUNTS = """
import random, sys, threading
sys.path.insert(0, {repo!r})
from textgen_core.serve.heap import bound_heap, give_back_freed
if {bounded}:
    bound_heap()
from textgen_core.memory.open_buffers import build_buffer_memory
rng = random.Random(0)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 12))) for _ in range(5000)]
text = b" ".join(rng.choice(words) for _ in range(250000))[:1 << 20]
kept = []
def count(i):
    kept[:] = [build_buffer_memory([text[i * 1000:]])]
    if {bounded}:
        give_back_freed()
for i in range(4):
    thread = threading.Thread(target=count, args=(i,))
    thread.start()
    thread.join()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(int(status["RssAnon"].split()[0]) / 1024)
"""


def private_mb_after_counts(bounded: bool) -> float:
    run = subprocess.run([sys.executable, "-c", COUNTS.format(repo=str(REPO), bounded=bounded)],
                         capture_output=True, text=True, timeout=120, check=True)
    return float(run.stdout.split()[-1])


@pytest.mark.skipif(_LIBC is None, reason="glibc's mallopt and malloc_trim only")
def test_counting_the_buffers_again_and_again_gives_the_freed_memory_back():
    plain = private_mb_after_counts(bounded=False)
    bounded = private_mb_after_counts(bounded=True)
    # measured: 110 MB plain, 50 bounded (one table of 1 MB is ~25 MB of it)
    assert bounded < plain - 20, (plain, bounded)


def test_without_glibc_the_calls_do_nothing(monkeypatch):
    from textgen_core.serve import heap
    monkeypatch.setattr(heap, "_LIBC", None)
    assert heap.bound_heap() is False
    heap.give_back_freed()
