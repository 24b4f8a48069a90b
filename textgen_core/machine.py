"""What machine a figure was measured on (machines here differ: a figure means little without it)."""
from __future__ import annotations

import os
import platform


def machine_summary() -> str:
    """CPU model name (machines differ: figures mean little without it)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
