"""Training progress for people (a bar on a terminal) and for programs (JSON lines, read by the editor)."""
from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


class ProgressReporter:
    """Receives training events as dicts with an "event" key: start, progress, epoch, done, error."""

    def emit(self, event: dict[str, Any]) -> None:
        raise NotImplementedError


class JsonLinesReporter(ProgressReporter):
    """One JSON object per line, flushed at once, so a reader sees each event as it happens."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def emit(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.stream.flush()


class TerminalReporter(ProgressReporter):
    """A bar redrawn in place on a terminal; plain lines (one per epoch) when not a terminal."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._val_bpc: float | None = None

    def emit(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "start":
            self._line(f"training {event.get('parameters', 0):,} parameters on "
                       f"{event.get('train_bytes', 0):,} bytes ({event.get('val_bytes', 0):,} held out)"
                       + (f", base {event['base']}" if event.get("base") else "")
                       + (f"; {event['kernel']['gru']} GRU, {event['kernel']['precision']} products"
                          if event.get("kernel") else ""))
            if event.get("initial_val_bpc") is not None:
                self._line(f"val bpc before training: {event['initial_val_bpc']:.3f}")
        elif kind == "progress":
            now = time.monotonic()
            if self.tty and now - self._last_draw >= 0.1:
                self._last_draw = now
                self.stream.write("\r" + self._bar(event))
                self.stream.flush()
        elif kind == "epoch":
            self._val_bpc = event.get("val_bpc")
            if self.tty:
                self.stream.write("\r" + self._bar(event) + "\n")
                self.stream.flush()
            else:
                self._line(self._bar(event))
        elif kind == "done":
            self._line(f"saved {event.get('out')}: val bpc {event.get('val_bpc', float('nan')):.3f} "
                       f"in {event.get('seconds', 0):.1f} s ({event.get('stop_reason', '')})")
        elif kind == "error":
            self._line(f"error: {event.get('message')}")

    def _bar(self, event: dict[str, Any]) -> str:
        fraction = max(0.0, min(1.0, float(event.get("percent", 0)) / 100))
        filled = int(round(fraction * self.width))
        val = event.get("val_bpc", self._val_bpc)
        val_text = f" val {val:.3f}" if isinstance(val, (int, float)) else ""
        eta = event.get("eta_s")
        eta_text = f" ETA {int(eta) // 60}:{int(eta) % 60:02d}" if isinstance(eta, (int, float)) else ""
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:5.1f}% "
                f"step {event.get('step', 0)} loss {event.get('loss', float('nan')):.3f}{val_text} bpc "
                f"{event.get('bytes_per_s', 0) / 1000:.1f} KB/s{eta_text}")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


class SilentReporter(ProgressReporter):
    def emit(self, event: dict[str, Any]) -> None:
        pass
