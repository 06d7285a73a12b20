"""bench.scale_ab: two trees on one database only at the same Alembic head; a tiny run end to end (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.scale_ab import REPO, alembic_head, main, same_schema

pytestmark = pytest.mark.integration


def _tree(root: Path, extra_revision: bool) -> Path:
    """A tree with this repository's migrations (and, optionally, one revision after its head)."""
    shutil.copytree(REPO / "store" / "migrations", root / "store" / "migrations")
    if extra_revision:
        head = alembic_head(REPO)
        (root / "store" / "migrations" / "versions" / "9999_later.py").write_text(
            f'revision = "9999_later"\ndown_revision = "{head}"\n\n\ndef upgrade() -> None: ...\n'
        )
    return root


def test_trees_at_different_alembic_heads_are_refused(tmp_path: Path) -> None:
    same, later = _tree(tmp_path / "same", False), _tree(tmp_path / "later", True)
    assert same_schema([REPO, same]) == alembic_head(REPO)
    with pytest.raises(SystemExit, match=r"schemas differ.*9999_later"):
        same_schema([REPO, later])


@pytest.mark.slow
def test_a_tiny_run_of_one_tree_against_itself(tmp_path: Path) -> None:
    tiny = ["--concurrency", "1", "3", "--slices", "2", "--seconds", "1", "--lenders", "2"]
    main([str(REPO), str(REPO), *tiny, "--label", "test", "--out", str(tmp_path)])
    document = json.loads((tmp_path / "scale_ab-test.json").read_text())
    assert [(s["tree"], s["level"]["concurrency"]) for s in document["slices"]] == [
        (tree, concurrency) for concurrency in (1, 3) for tree in ("A", "B", "B", "A")
    ]
    assert all(s["level"]["requests"] > 0 and s["level"]["errors"] == 0 for s in document["slices"])
    assert document["duplicate_offer_nonces"] == 0
    assert set(document["summary"]) == {"1", "3"}
    assert (tmp_path / "scale_ab-test.png").stat().st_size > 0
