"""`make bench`'s results file: a rerun of some sections (`run_all.py --only`) replaces just those."""
from __future__ import annotations

import sys

import pytest

from bench import run_all

SECTIONS = [("Alpha speed", ["-c", "print('alpha 1')"]),
            ("Beta memory", ["-c", "print('beta 1')"]),
            ("Gamma quality", ["-c", "print('gamma 1')"])]


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setattr(run_all, "BENCHES", SECTIONS)
    return tmp_path / "RESULTS.md"


def run(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["run_all.py", *args])
    run_all.main()


def test_only_reruns_the_chosen_section_and_keeps_the_others_in_order(results, monkeypatch):
    run(monkeypatch)
    first = results.read_text()
    assert [line for line in first.splitlines() if line.startswith("## ")] == [f"## {t}" for t, _ in SECTIONS]

    monkeypatch.setattr(run_all, "BENCHES", [SECTIONS[0], ("Beta memory", ["-c", "print('beta 2')"]), SECTIONS[2]])
    run(monkeypatch, "--only", "Beta")
    second = results.read_text()

    assert "beta 2" in second and "beta 1" not in second
    assert "alpha 1" in second and "gamma 1" in second
    assert [line for line in second.splitlines() if line.startswith("## ")] == [f"## {t}" for t, _ in SECTIONS]
    assert second.split("## Beta")[0] == first.split("## Beta")[0]          # heading and earlier sections untouched
    assert "rerun " in second.split("## Beta")[1].split("## Gamma")[0]


def test_only_adds_a_section_the_file_lacks_in_its_place(results, monkeypatch):
    monkeypatch.setattr(run_all, "BENCHES", [SECTIONS[0], SECTIONS[2]])
    run(monkeypatch)
    monkeypatch.setattr(run_all, "BENCHES", SECTIONS)
    run(monkeypatch, "--only", "Beta")
    assert [line for line in results.read_text().splitlines() if line.startswith("## ")] == \
        [f"## {t}" for t, _ in SECTIONS]


def test_only_with_no_matching_title_says_so_and_changes_nothing(results, monkeypatch):
    run(monkeypatch)
    before = results.read_text()
    with pytest.raises(SystemExit, match="no section title contains 'Delta'"):
        run(monkeypatch, "--only", "Delta")
    assert results.read_text() == before
