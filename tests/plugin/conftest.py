"""Fixtures the plugin test modules share."""
from __future__ import annotations

import pytest

from tests.nvim_harness import start_module_nvim


@pytest.fixture(scope="module")
def nvim(tiny_model_dir, tmp_path_factory):
    """One Neovim for a test module, serving the tiny model without learning (`base_config`); a
    module that needs another kind defines its own `nvim`."""
    editor = start_module_nvim(tiny_model_dir, tmp_path_factory.mktemp("nvim-home"))
    yield editor
    editor.close()
