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


def cpu_has_bfloat16() -> bool:
    """Whether the CPU multiplies bfloat16 matrices in hardware (AMX or AVX-512 BF16: Intel since
    Cooper Lake, AMD since Zen 4); elsewhere bfloat16 products are emulated and slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False
