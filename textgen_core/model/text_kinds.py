"""The kinds of text a model's mixing weights can be fitted for, and the kind a buffer holds.

How much a suggestion should trust the corpus n-gram, and the buffer's own repeats, depends on the
text: the default model's n-gram counts Python, Lua and Vim help, which helps there and misleads in
Rust or JavaScript. So a model may carry mixing weights fitted per kind (config.json's match.kinds,
written by `textgen fit`); the editor says which kind a buffer holds by its Neovim filetype, and the
kinds a model has no weights for are served by the weights fitted on all of its text.
"""
from __future__ import annotations

# Each kind and the Neovim filetypes of its text ('filetype' option values, `:help filetypes`).
KIND_FILETYPES: dict[str, tuple[str, ...]] = {
    "python": ("python", "pyrex", "cython"),
    "lua": ("lua", "luau"),
    "help": ("help",),
    "vimscript": ("vim",),
    "c": ("c", "cpp", "objc", "objcpp", "cuda", "arduino"),
    "rust": ("rust",),
    "go": ("go",),
    "shell": ("sh", "bash", "zsh", "ksh", "dash", "fish"),
    "javascript": ("javascript", "typescript", "javascriptreact", "typescriptreact", "jsx", "tsx"),
    "docs": ("markdown", "rst", "asciidoc", "org", "pandoc"),
    "prose": ("text", "gitcommit", "mail", "man"),
}
KINDS = tuple(KIND_FILETYPES)
_KIND_OF_FILETYPE = {filetype: kind for kind, filetypes in KIND_FILETYPES.items() for filetype in filetypes}
MAX_NAME_CHARS = 64


def kind_of(name: str | None) -> str | None:
    """The kind of text `name` names: a kind itself, or a filetype of one; a compound filetype
    ("javascript.jsx") by its first part that has a kind. None for anything else (no filetype, an
    unknown one), which the model's weights fitted on all of its text serve."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        return None
    name = name.lower()
    if name in KIND_FILETYPES:
        return name
    for part in (name, *name.split(".")):
        if part in _KIND_OF_FILETYPE:
            return _KIND_OF_FILETYPE[part]
    return None
