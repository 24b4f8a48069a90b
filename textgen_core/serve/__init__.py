"""Serving suggestions in the editor: the engine's worker thread, its state cache, learning as you type."""
