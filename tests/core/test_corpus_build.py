"""The broad corpus recipe (`make corpus`): the recipe is checked, archives of the three registries are
read as data, text is cleaned, and a build writes the kept files and a manifest that lists them.

No network here: the archives a build reads are made by the test and put where `fetch` keeps them.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from textgen_core.train.corpus_build import MANIFEST, build_corpus, read_manifest, safe_member_path
from textgen_core.train.corpus_clean import Cleaner, html_text, refusal
from textgen_core.train.corpus_sources import (
    KINDS,
    RECIPES,
    Package,
    RecipeError,
    archive_name,
    decoded,
    members,
    read_recipe,
)

PYTHON = b"".join(b"def handler_%d(request):\n    return request.json()['value_%d']\n\n" % (i, i) for i in range(12))
LUA = b"".join(b"local function step_%d(state)\n  return state.items[%d] or {}\nend\n\n" % (i, i) for i in range(12))
LICENSE = b"Permission is hereby granted, free of charge, to any person obtaining a copy\nof this software. " * 4


def _tar(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _deb(files: dict[str, bytes]) -> bytes:
    """A Debian package: an ar archive of debian-binary, control.tar.xz and data.tar.xz."""
    parts = [("debian-binary", b"2.0\n"), ("control.tar.xz", _tar({"./control": b"Package: x\n"}, "w:xz")),
             ("data.tar.xz", _tar(files, "w:xz"))]
    out = b"!<arch>\n"
    for name, data in parts:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    return out


def _wheel(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, data in files.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


def _place(downloads: Path, package: Package, data: bytes) -> None:
    """Put an archive where `fetch` keeps the package's, so that the build reads it without fetching."""
    suffix = {"pypi": ".whl", "sdist": ".tar.gz", "npm": ".tgz", "deb": ".deb"}[package.source]
    folder = downloads.resolve() / archive_name(package)
    folder.mkdir(parents=True)
    (folder / f"archive{suffix}").write_bytes(data)


def test_the_shipped_recipe_pins_ten_kinds_each_with_a_package_held_out_whole():
    rows = read_recipe()
    assert {row.kind for row in rows} == set(KINDS) and len(KINDS) >= 10
    for kind in KINDS:
        splits = {row.split for row in rows if row.kind == kind}
        assert splits == {"train", "heldout"}, kind
    for row in rows:
        assert row.package.version and row.globs, row
    by_package = {}
    for row in rows:
        assert by_package.setdefault(row.package.name.lower(), row.split) == row.split, row.package
    assert {row.split for row in read_recipe(RECIPES[1])} == {"train"}      # rows added later: none held out


@pytest.mark.parametrize("line, problem", [
    ("python\tpypi\trequests\t2.32.3\ttrain", "6 or 7 tab-separated fields"),
    ("python\tpypi\trequests\t2.32.3\ttrain\t*.py\tlots", "a size in MB, not 'lots'"),
    ("cobol\tpypi\trequests\t2.32.3\ttrain\t*.py", "unknown kind 'cobol'"),
    ("python\tcran\trequests\t2.32.3\ttrain\t*.py", "unknown source 'cran'"),
    ("python\tpypi\trequests\t2.32.3\ttest\t*.py", "split must be train or heldout"),
    ("python\tpypi\trequests\t2.32.3\ttrain\t*.py\ndocs\tpypi\trequests\t2.32.3\theldout\t*.md", "held out whole"),
    ("python\tpypi\tRequests\t2.32.3\ttrain\t*.py\ndocs\tsdist\trequests\t2.32.3\theldout\t*.rst", "every source"),
])
def test_a_bad_recipe_line_is_refused_with_its_line_number(tmp_path, line, problem):
    recipe = tmp_path / "recipe.tsv"
    recipe.write_text("# a comment\n" + line + "\n")
    with pytest.raises(RecipeError, match=problem) as raised:
        read_recipe(recipe)
    assert f"{recipe}:" in str(raised.value)


def test_archives_of_each_registry_are_read_as_data(tmp_path):
    wheel, npm, deb = tmp_path / "a.whl", tmp_path / "b.tgz", tmp_path / "c.deb"
    wheel.write_bytes(_wheel({"pkg/app.py": PYTHON}))
    npm.write_bytes(_tar({"package/index.js": b"module.exports = 1;\n"}))
    deb.write_bytes(_deb({"./usr/share/lua/5.1/pkg/init.lua": LUA}))
    assert list(members(wheel)) == [("pkg/app.py", PYTHON)]
    assert list(members(npm)) == [("package/index.js", b"module.exports = 1;\n")]
    assert list(members(deb)) == [("./usr/share/lua/5.1/pkg/init.lua", LUA)]
    import gzip
    assert decoded("doc/guide.txt.gz", gzip.compress(b"text\n")) == ("doc/guide.txt", b"text\n")


def test_cleaning_keeps_code_and_prose_and_refuses_what_is_not_written_by_hand():
    assert refusal("app.py", PYTHON) is None
    minified = b'!function(e,t){"object"==typeof exports&&(module.exports=t())}(this,function(){return 1});'
    assert refusal("min.js", minified * 30) == "minified or long lines"       # lodash.min.js: 1.6 % blanks
    paragraph = b"A Markdown paragraph on one line, as many are written, is prose and kept. " * 30
    assert len(paragraph) > 1000 and refusal("README.md", paragraph + b"\n") is None
    assert refusal("gen.go", b"// Code generated by protoc. DO NOT EDIT.\n" + PYTHON) == "generated"
    assert refusal("table.c", b"".join(b"0x%04x, 0x%04x, 0x%04x,\n" % (i, i * 3, i * 7) for i in range(200))) \
        == "data table"
    assert refusal("blob.bin", PYTHON + b"\0") == "binary"
    assert refusal("latin.txt", PYTHON + "caf\xe9".encode("latin-1")) == "not UTF-8"
    assert refusal("tiny.py", b"x = 1\n") == "too small"

    cleaner = Cleaner()
    assert cleaner.keep("a/LICENSE", LICENSE) == (LICENSE, "kept")
    assert cleaner.keep("b/LICENSE.txt", LICENSE) == (None, "license text seen before")
    assert cleaner.keep("a/app.py", PYTHON)[1] == "kept"
    assert cleaner.keep("b/app.py", PYTHON.replace(b"    ", b"\t")) == (None, "near copy")


def test_a_file_with_a_few_lines_changed_is_a_near_copy_and_files_sharing_a_header_are_not():
    header = b"".join(b"# Licensed under the Apache License, Version 2.0 (clause %d of the notice).\n" % i
                      for i in range(10))
    body = [b"def step_%d(state, items):\n    return [item * %d for item in items if item in state]\n" % (i, i)
            for i in range(60)]
    cleaner = Cleaner()
    assert cleaner.keep("a/core.py", header + b"".join(body))[1] == "kept"
    edited = body[:]
    edited[5] = b"def step_five(state):\n    return sorted(state)\n"
    edited[40] = b"# a comment added in the vendored copy\n" + edited[40]
    assert cleaner.keep("vendor/core.py", header + b"".join(edited)) == (None, "near copy")
    other = [b"local function walk_%d(tree)\n  for _, node in ipairs(tree.children_%d) do visit(node) end\nend\n"
             % (i, i) for i in range(60)]
    assert cleaner.keep("a/walk.lua", header + b"".join(other))[1] == "kept"      # the same header, other code


def test_html_is_kept_as_the_text_a_person_reads():
    page = (b"<html><head><title>t</title><style>p {color: red}</style></head><body><h1>Standards</h1>"
            b"<p>Write programs that  <em>work</em> &amp; last.</p><script>var x = 1;</script></body></html>")
    assert html_text(page) == b"Standards\n\nWrite programs that work & last.\n"


def test_member_paths_cannot_climb_out_of_the_corpus():
    assert str(safe_member_path("./usr/include/zlib.h")) == "usr/include/zlib.h"
    assert safe_member_path("../../etc/passwd") is None
    assert safe_member_path("/") is None


def test_a_build_writes_the_kept_files_and_a_manifest_and_drops_held_out_copies_of_train_files(tmp_path):
    recipe = tmp_path / "recipe.tsv"
    recipe.write_text("python\tpypi\tshop\t1.0\ttrain\t*.py\n"
                      "lua\tdeb\tlua-shop\t2.0-1\theldout\t*.lua\n"
                      "python\tnpm\tcopycat\t3.0.0\theldout\t*.py\n")
    downloads = tmp_path / "downloads"
    _place(downloads, Package("pypi", "shop", "1.0"), _wheel({"shop/app.py": PYTHON, "shop/LICENSE": LICENSE}))
    _place(downloads, Package("deb", "lua-shop", "2.0-1"), _deb({"./usr/share/lua/shop.lua": LUA}))
    _place(downloads, Package("npm", "copycat", "3.0.0"), _tar({"package/app.py": PYTHON}))
    out = tmp_path / "corpus"
    summary = build_corpus(read_recipe(recipe), out, downloads, say=lambda line: None)

    rows = read_manifest(out)
    assert [(r["kind"], r["split"], r["package"], r["version"]) for r in rows] == [
        ("python", "train", "pypi:shop", "1.0"), ("lua", "heldout", "deb:lua-shop", "2.0-1")]
    for row in rows:
        data = (out / row["path"]).read_bytes()
        assert len(data) == int(row["bytes"]) and hashlib.sha256(data).hexdigest() == row["sha256"]
    assert rows[0]["path"] == "train/python/pypi-shop-1.0/shop/app.py"
    assert summary.refused["copy"] == 1                       # the held-out copy of a train file
    assert not (out.parent / "corpus.building").exists()

    build_corpus(read_recipe(recipe), out, downloads, say=lambda line: None)     # again: replaced, same
    assert read_manifest(out) == rows


def test_textgen_corpus_broad_lists_what_the_manifest_names_and_refuses_a_changed_file(tmp_path, capsys):
    """What training reads (`make default-model`): the manifest's files of a split, by path."""
    from textgen_core.cli import main

    recipe = tmp_path / "recipe.tsv"
    recipe.write_text("python\tpypi\tshop\t1.0\ttrain\t*.py\nlua\tdeb\tlua-shop\t2.0-1\ttrain\t*.lua\n"
                      "lua\tnpm\tother\t1.0.0\theldout\t*.lua\n")
    downloads = tmp_path / "downloads"
    _place(downloads, Package("pypi", "shop", "1.0"),
           _wheel({"shop/z.py": PYTHON, "shop/a.py": LUA.replace(b"local function", b"def")}))
    _place(downloads, Package("deb", "lua-shop", "2.0-1"), _deb({"./usr/share/lua/shop.lua": LUA}))
    _place(downloads, Package("npm", "other", "1.0.0"), _tar({"package/o.lua": LUA.replace(b"state", b"s")}))
    out = tmp_path / "corpus"
    build_corpus(read_recipe(recipe), out, downloads, say=lambda line: None)

    assert main(["corpus", "--broad", str(out)]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == sorted(listed) and [Path(p).relative_to(out).as_posix() for p in listed] == [
        "train/lua/deb-lua-shop-2.0-1/usr/share/lua/shop.lua", "train/python/pypi-shop-1.0/shop/a.py",
        "train/python/pypi-shop-1.0/shop/z.py"]
    assert main(["corpus", "--broad", str(out), "--split", "heldout", "--kind", "lua"]) == 0
    assert capsys.readouterr().out.split() == [str(out / "heldout/lua/npm-other-1.0.0/package/o.lua")]

    (out / "train/python/pypi-shop-1.0/shop/z.py").write_bytes(PYTHON + b"# changed\n")
    assert main(["corpus", "--broad", str(out)]) != 0
    assert "z.py is missing or changed" in capsys.readouterr().err
    assert main(["corpus", "--broad", str(tmp_path / "none")]) != 0
    assert "make corpus writes it" in capsys.readouterr().err


def test_a_corpus_of_two_recipe_files_lists_each_ones_files_alone(tmp_path, capsys):
    """A training stage that learned the first recipe file's rows, before the second added packages, lists
    exactly what it learned (`--recipe`); a package held out in one file cannot be trained on in another."""
    from textgen_core.cli import main

    first, added = tmp_path / "recipe.tsv", tmp_path / "recipe_more.tsv"
    first.write_text("lua\tdeb\tlua-shop\t2.0-1\ttrain\t*.lua\nlua\tnpm\tother\t1.0.0\theldout\t*.lua\n")
    added.write_text("# added later\nlua\tdeb\tlua-more\t1.0-1\ttrain\t*.lua\n")
    downloads = tmp_path / "downloads"
    _place(downloads, Package("deb", "lua-shop", "2.0-1"), _deb({"./usr/share/lua/shop.lua": LUA}))
    _place(downloads, Package("deb", "lua-more", "1.0-1"),
           _deb({"./usr/share/lua/more.lua": LUA.replace(b"state", b"count").replace(b"local", b"local x = 1\nlocal")}))
    _place(downloads, Package("npm", "other", "1.0.0"), _tar({"package/o.lua": LUA.replace(b"state", b"s")}))
    out = tmp_path / "corpus"
    build_corpus(read_recipe(first, added), out, downloads, say=lambda line: None)

    assert main(["corpus", "--broad", str(out), "--split", "all"]) == 0
    assert [Path(p).name for p in capsys.readouterr().out.split()] == ["o.lua", "more.lua", "shop.lua"]
    assert main(["corpus", "--broad", str(out), "--split", "all", "--recipe", str(first)]) == 0
    assert [Path(p).name for p in capsys.readouterr().out.split()] == ["o.lua", "shop.lua"]
    assert main(["corpus", "--broad", str(out), "--recipe", str(added)]) == 0
    assert [Path(p).name for p in capsys.readouterr().out.split()] == ["more.lua"]
    assert main(["corpus", "--broad", str(out), "--recipe", str(tmp_path / "none.tsv")]) != 0
    assert "--recipe:" in capsys.readouterr().err
    assert main(["corpus", "--recipe", str(first)]) != 0
    assert "give --broad" in capsys.readouterr().err

    added.write_text("lua\tnpm\tother\t1.0.0\ttrain\t*.lua\n")
    with pytest.raises(RecipeError, match=f"{added}:1: other is both train and heldout"):
        read_recipe(first, added)


def test_a_row_with_a_cap_keeps_files_until_the_cap_is_passed(tmp_path):
    recipe = tmp_path / "recipe.tsv"
    recipe.write_text("lua\tdeb\tlua-big\t1.0-1\ttrain\t*.lua\t0.0001\n")          # 104 bytes: one file
    downloads = tmp_path / "downloads"
    _place(downloads, Package("deb", "lua-big", "1.0-1"),
           _deb({"./usr/share/lua/a.lua": LUA, "./usr/share/lua/b.lua": LUA.replace(b"state", b"other") * 2}))
    summary = build_corpus(read_recipe(recipe), tmp_path / "corpus", downloads, say=lambda line: None)
    assert [row["path"].rsplit("/", 1)[1] for row in read_manifest(tmp_path / "corpus")] == ["a.lua"]
    assert summary.refused["over its row's cap"] == 1


def _users_files(folder: Path) -> dict[str, bytes]:
    """A folder of a user's files, including look-alikes of ours (a manifest, split folders); what it holds."""
    (folder / "train" / "notes").mkdir(parents=True)
    files = {"CORPUS.tsv": b"kind\tsplit\n", "train/notes/plan.md": b"my plan\n", "thesis.tex": b"\\section{x}\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _still_there(folder: Path, files: dict[str, bytes]) -> bool:
    return all((folder / name).read_bytes() == data for name, data in files.items())


@pytest.mark.parametrize("place", ["out", "out.building", "a link to them"])
def test_a_build_pointed_at_a_users_files_keeps_them_all(tmp_path, place):
    """Only a folder corpus-build wrote (its marker word for word, nothing foreign in it) is ever
    removed; a user's folder, even one with a manifest and split folders, or a link to one, stays."""
    users = tmp_path / "users"
    users.mkdir()
    files = _users_files(users)
    out = tmp_path / "corpus"
    if place == "out":
        out = users
    elif place == "out.building":
        users.rename(tmp_path / "corpus.building")
        users = tmp_path / "corpus.building"
    else:
        out.symlink_to(users, target_is_directory=True)
    with pytest.raises(FileExistsError, match="not a corpus folder this command wrote"):
        build_corpus([], out, tmp_path / "downloads", say=lambda line: None)
    assert _still_there(users, files)
    assert sorted(p.name for p in users.iterdir()) == ["CORPUS.tsv", "thesis.tex", "train"]


def test_a_corpus_folder_with_a_users_file_added_is_no_longer_replaced(tmp_path):
    recipe = tmp_path / "recipe.tsv"
    recipe.write_text("python\tpypi\tshop\t1.0\ttrain\t*.py\n")
    downloads = tmp_path / "downloads"
    _place(downloads, Package("pypi", "shop", "1.0"), _wheel({"shop/app.py": PYTHON}))
    out = tmp_path / "corpus"
    build_corpus(read_recipe(recipe), out, downloads, say=lambda line: None)
    build_corpus(read_recipe(recipe), out, downloads, say=lambda line: None)        # ours: replaced
    (out / "my-notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        build_corpus(read_recipe(recipe), out, downloads, say=lambda line: None)
    assert (out / "my-notes.txt").read_text() == "mine" and (out / MANIFEST).is_file()


def test_a_fetch_never_empties_a_users_folder_named_as_its_partial_one(tmp_path):
    from textgen_core.train.corpus_sources import fetch

    package = Package("npm", "left-pad", "1.3.0")
    partial = tmp_path / (archive_name(package) + ".partial")
    partial.mkdir()
    (partial / "draft.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a fetch of ours"):
        fetch(package, tmp_path)
    assert (partial / "draft.txt").read_text() == "mine"


def test_an_npm_tarball_is_kept_only_when_it_matches_the_registrys_sha512(tmp_path, monkeypatch):
    """A real HTTP registry on loopback answering as registry.npmjs.org does."""
    import base64
    import http.server
    import json
    import threading

    from textgen_core.train import corpus_sources

    tarball = _tar({"package/index.js": b"module.exports = function add(a, b) { return a + b; };\n"})
    integrity = {"good": "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode(),
                 "bad": "sha512-" + base64.b64encode(hashlib.sha512(b"other").digest()).decode()}

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.endswith(".tgz"):
                body = tarball
            else:                                  # /<name>/<version>: the version's document
                version = self.path.rsplit("/", 1)[1]
                body = json.dumps({"dist": {"tarball": f"http://127.0.0.1:{port}/x/-/x-{version}.tgz",
                                            "integrity": integrity[version]}}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Registry)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(corpus_sources, "NPM_REGISTRY", f"http://127.0.0.1:{port}")
    try:
        kept = corpus_sources.fetch(Package("npm", "@scope/adder", "good"), tmp_path)
        assert kept.read_bytes() == tarball and kept.name == "adder-good.tgz"
        with pytest.raises(OSError, match="does not match the registry's sha512"):
            corpus_sources.fetch(Package("npm", "@scope/adder", "bad"), tmp_path)
        assert not (tmp_path / archive_name(Package("npm", "@scope/adder", "bad"))).exists()
    finally:
        server.shutdown()


def test_a_source_distribution_is_kept_only_when_it_matches_pypis_sha256(tmp_path, monkeypatch):
    """A real HTTP server on loopback answering as pypi.org's JSON API does (a relative file address
    as its mirrors give); the archive is only downloaded and read as data, nothing in it runs."""
    import http.server
    import json
    import threading

    from textgen_core.train import corpus_sources

    sdist = _tar({"zlibby-1.0/src/inflate.c": b"int inflate(void) { return 0; }\n"})
    digests = {"1.0": hashlib.sha256(sdist).hexdigest(), "2.0": hashlib.sha256(b"other").hexdigest()}

    class PyPI(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.endswith(".tar.gz"):
                body = sdist
            else:                                  # /pypi/<name>/json: every release's files
                body = json.dumps({"releases": {
                    version: [{"packagetype": "bdist_wheel", "filename": f"zlibby-{version}-py3-none-any.whl",
                               "url": "../../files/x.whl", "digests": {"sha256": "0"}},
                              {"packagetype": "sdist", "filename": f"zlibby-{version}.tar.gz",
                               "url": f"../../files/zlibby-{version}.tar.gz", "digests": {"sha256": digest}}]
                    for version, digest in digests.items()}}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), PyPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(corpus_sources, "PYPI", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        kept = corpus_sources.fetch(Package("sdist", "zlibby", "1.0"), tmp_path)
        assert kept.name == "zlibby-1.0.tar.gz" and kept.read_bytes() == sdist
        assert list(members(kept)) == [("zlibby-1.0/src/inflate.c", b"int inflate(void) { return 0; }\n")]
        with pytest.raises(OSError, match="does not match PyPI's sha256"):
            corpus_sources.fetch(Package("sdist", "zlibby", "2.0"), tmp_path)
        assert not (tmp_path / archive_name(Package("sdist", "zlibby", "2.0"))).exists()
        with pytest.raises(OSError, match="sdist:zlibby@3.0"):
            corpus_sources.fetch(Package("sdist", "zlibby", "3.0"), tmp_path)
    finally:
        server.shutdown()
