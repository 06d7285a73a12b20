"""``creditmesh admin``'s proposal and signature files: one of another shape (a list, a number where a list
belongs, an entry that is no object) is refused naming the file, not a TypeError traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.governance.service import GovernanceError, load_proposals, load_signatures

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text", ["[]", '{"proposals": 5}', '{"proposals": [5]}', '{"signatures": [5]}', "{"])
def test_a_file_of_another_shape_is_refused_naming_it(text: str, tmp_path: Path) -> None:
    path = tmp_path / "file.json"
    path.write_text(text)
    loader = load_signatures if "signatures" in text else load_proposals
    with pytest.raises(GovernanceError, match=r"file\.json"):
        loader(path)
