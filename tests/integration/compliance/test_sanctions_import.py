"""``creditmesh sanctions import`` on a small OFAC-format file set, into a real database (SQLite and PostgreSQL),
and the platform's compliance built from it: screening uses the newest list and decisions name its version."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from api.bootstrap import _compliance
from api.cli import main
from api.settings import Settings
from compliance import BorrowerFacts
from compliance.decisions import Outcome
from compliance.sanctions.lists import SHIPPED_DIR, ListedName, load_newest
from compliance.sanctions.ofac import parse_csv_set
from store.db import Database
from store.sanctions_lists import SanctionsNameListRow, SqlSanctionsListRepository
from tests.support.screening import screen_accept
from tests.unit.compliance.test_ofac_import import ADD, ALT, SDN

pytestmark = pytest.mark.integration

#: listed in SDN.CSV's Remarks only (not in the shipped address file)
LISTED_WALLET = "0x7F367cC41522cE07553e823bf3be79A889DEbe1B"
#: wallets of SECONDEYE, SUEX and CHATEX past the 1,000 characters of their SDN.CSV Remarks
SUEX_CHATEX_SECONDEYE = (
    "0x1da5821544e25c636c1417ba96ade4cf6d2f9b5a",
    "0x2f389ce8bd8ff92de3402ffce4691d17fc4f6535",
    "0x67d40ee1a85bf4a4bb7ffae16de985e8427b6b45",
)


def _files(tmp_path: Path) -> list[str]:
    for name, raw in (("SDN.CSV", SDN), ("ALT.CSV", ALT), ("ADD.CSV", ADD)):
        (tmp_path / name).write_bytes(raw)
    files = ["--sdn", str(tmp_path / "SDN.CSV"), "--alt", str(tmp_path / "ALT.CSV"), "--add", str(tmp_path / "ADD.CSV")]
    return [*files, "--force"]  # three entries in place of the shipped list's 13,738: the operator's override


def _import_and_screen(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _files(tmp_path)
    main(["sanctions", "import", *files, "--published", "2026-11-20", "--database-url", url])
    printed = capsys.readouterr().out
    assert "stored ofac-sdn-names@2026-11-20#" in printed
    assert "stored ofac-sdn-digital-currency-addresses@2026-11-20#" in printed
    assert "2 EVM addresses" in printed
    main(["sanctions", "import", *files, "--published", "2026-11-20", "--database-url", url])
    assert "already stored" in capsys.readouterr().out  # idempotent

    database = Database(url)
    try:
        compliance = _compliance(Settings(data_dir=tmp_path), database)
    finally:
        database.dispose()
    label = compliance.screen.name_list_version
    assert label.startswith("ofac-sdn-names@2026-11-20#")  # newer than the shipped 2024 file
    record = screen_accept(
        compliance, BorrowerFacts("b-1", "0x" + "12" * 20, "Dmitriy Ivanovich Kovalenko", "US-FL"), "quote-1"
    )  # an ALT.CSV alias, in full
    assert record.outcome is Outcome.DENY
    assert "sanctions.name-match" in {r.code for r in record.reasons}
    assert record.versions["ofac-sdn-names"] == label
    clear = screen_accept(compliance, BorrowerFacts("b-2", "0x" + "12" * 20, "Mazen Hussein", "US-FL"), "q-2")
    assert clear.outcome is Outcome.ALLOW  # the shipped list is no longer the one screened with
    # the wallets the same files list: the import's address list, not the shipped 2026-08-20 file
    wallet = screen_accept(compliance, BorrowerFacts("b-3", LISTED_WALLET, "Jane Roe", "US-FL"), "q-3")
    assert wallet.outcome is Outcome.DENY
    assert "sanctions.address" in {r.code for r in wallet.reasons}
    assert wallet.versions["ofac-sdn-digital-currency-addresses"].startswith(
        "ofac-sdn-digital-currency-addresses@2026-11-20#"
    )


def _screens_with_the_shipped_list(url: str, tmp_path: Path) -> bool:
    """Whether the platform on ``url`` still screens with the shipped list file (no imported list is newer)."""
    database = Database(url)
    database.migrate()
    try:
        return _compliance(Settings(data_dir=tmp_path), database).screen.names.version.source.startswith("ofac-sdn-")
    finally:
        database.dispose()


def test_import_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _import_and_screen(f"sqlite:///{tmp_path / 'creditmesh.db'}", tmp_path, capsys)


def test_import_on_postgresql(
    postgres_schema: Callable[[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _import_and_screen(postgres_schema("sanctions_import"), tmp_path, capsys)


def test_a_bad_file_set_is_refused_and_nothing_stored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'creditmesh.db'}"
    (tmp_path / "ALT.CSV").write_bytes(b'9999,1,"a.k.a.","NOBODY",-0-\r\n')
    (tmp_path / "SDN.CSV").write_bytes(SDN)
    with pytest.raises(SystemExit, match=r"refused: ALT\.CSV: alias 1 refers to ent_num 9999"):
        main(
            [
                "sanctions",
                "import",
                "--sdn",
                str(tmp_path / "SDN.CSV"),
                "--alt",
                str(tmp_path / "ALT.CSV"),
                "--published",
                "2026-11-20",
                "--database-url",
                url,
            ]
        )
    assert _screens_with_the_shipped_list(url, tmp_path), "nothing stored"


def test_a_list_dated_after_today_a_bad_date_or_a_missing_file_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    """The newest publication date is the list screened against: one dated after today (a typo) would have pinned
    screening to it for years, whatever was imported later. A date that is no date and a file that is not there were
    tracebacks."""
    url = f"sqlite:///{tmp_path / 'creditmesh.db'}"
    files = _files(tmp_path)
    for published, refused in (
        ("2062-11-20", "published on 2062-11-20, after today"),
        ("20/11/2026", "--published '20/11/2026' is not a date YYYY-MM-DD"),
    ):
        with pytest.raises(SystemExit, match=re.escape(refused)):
            main(["sanctions", "import", *files, "--published", published, "--database-url", url])
    missing = ["--sdn", str(tmp_path / "NOPE.CSV"), "--published", "2026-11-20", "--database-url", url]
    with pytest.raises(SystemExit, match=r"No such file or directory: .*NOPE\.CSV"):
        main(["sanctions", "import", *missing])
    assert _screens_with_the_shipped_list(url, tmp_path), "nothing stored"


def test_an_import_of_sdn_csv_keeps_the_wallets_its_remarks_are_cut_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """OFAC cuts SDN.CSV's Remarks at 1,000 characters: SUEX, CHATEX and SECONDEYE list more wallets than fit. The
    import of the 2024 SDN.CSV stored its 53 EVM addresses as the address list, in place of the 104 of the address
    file in use, and those three wallets were screened clean; they are now kept, their entries being listed."""
    sdn = tmp_path / "SDN.CSV"
    sdn.write_bytes((SHIPPED_DIR / "ofac-sdn-2024-05-03.csv").read_bytes())
    url = f"sqlite:///{tmp_path / 'creditmesh.db'}"
    main(["sanctions", "import", "--sdn", str(sdn), "--published", "2026-11-20", "--database-url", url])
    printed = capsys.readouterr().out
    shipped, _ = load_newest()
    listed = {str(n.ent_num) for n in screen_names(sdn)}
    # the address file's EVM wallets of entries on this SDN.CSV (those listed after 2024 are not on it: they leave)
    evm = {a for a, entries in shipped.entries.items() if a.startswith("0x") and any(e.uid in listed for e in entries)}
    database = Database(url)
    try:
        compliance = _compliance(Settings(data_dir=tmp_path), database)
    finally:
        database.dispose()
    screen = compliance.screen
    assert screen.addresses.version.label.startswith("ofac-sdn-digital-currency-addresses@2026-11-20#")
    for wallet in SUEX_CHATEX_SECONDEYE:
        hit = screen.screen_address(wallet, datetime(2026, 11, 29, tzinfo=UTC))
        assert hit is not None, wallet
    assert set(screen.addresses.entries) >= evm
    assert len(evm) > 53
    assert f"53 from the files, {len(screen.addresses.entries) - 53} kept from the list in use" in printed


def screen_names(sdn: Path) -> tuple[ListedName, ...]:
    return parse_csv_set(sdn.read_bytes(), None, None, datetime(2026, 11, 20, tzinfo=UTC).date()).names


def test_a_file_cut_short_or_far_shorter_than_the_list_in_use_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first 200 KB of SDN.CSV, cut in a quoted field, imported as 1,211 entries (of 13,738) and became the list
    every process screens with. A quoted field left open is now an error, and so are far fewer entries than the list
    in use, unless forced."""
    full = (SHIPPED_DIR / "ofac-sdn-2024-05-03.csv").read_bytes()
    url = f"sqlite:///{tmp_path / 'creditmesh.db'}"
    cut = tmp_path / "SDN.CSV"
    cut.write_bytes(full[:200_000])
    with pytest.raises(SystemExit, match=r"refused: SDN\.CSV line \d+: .*cut short"):
        main(["sanctions", "import", "--sdn", str(cut), "--published", "2026-11-20", "--database-url", url])
    rows = full.split(b"\r\n")
    cut.write_bytes(b"\r\n".join(rows[:1211]) + b"\r\n")  # cut at a row's end: well-formed, but far too short
    with pytest.raises(SystemExit, match=r"entries, the list in use .* 13,738: fewer than 90%"):
        main(["sanctions", "import", "--sdn", str(cut), "--published", "2026-11-20", "--database-url", url])
    assert _screens_with_the_shipped_list(url, tmp_path)
    main(["sanctions", "import", "--sdn", str(cut), "--published", "2026-11-20", "--database-url", url, "--force"])
    assert "stored ofac-sdn-names@2026-11-20#" in capsys.readouterr().out
    assert not _screens_with_the_shipped_list(url, tmp_path)


def test_without_alt_csv_the_aliases_come_from_the_remarks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Imported without --alt, SDN.CSV gave no alias at all (3,604 in the shipped loader's reading of the Remarks):
    "Hidden Cobra" no longer hit LAZARUS GROUP."""
    sdn = tmp_path / "SDN.CSV"
    sdn.write_bytes((SHIPPED_DIR / "ofac-sdn-2024-05-03.csv").read_bytes())
    url = f"sqlite:///{tmp_path / 'creditmesh.db'}"
    main(["sanctions", "import", "--sdn", str(sdn), "--published", "2026-11-20", "--database-url", url])
    printed = capsys.readouterr().out
    database = Database(url)
    try:
        screen = _compliance(Settings(data_dir=tmp_path), database).screen
    finally:
        database.dispose()
    assert screen.names.version.label.startswith("ofac-sdn-names@2026-11-20#")
    (hit,) = screen.screen_name("Hidden Cobra", datetime(2026, 11, 29, tzinfo=UTC), limit=1)
    assert hit.primary_name == "LAZARUS GROUP"
    _, shipped = load_newest()
    aliases = sum(1 for n in shipped.names if n.alias_of)
    assert sum(1 for n in screen.names.names if n.alias_of) == aliases
    assert f"of which {aliases:,} aliases" in printed
    assert "aliases from the Remarks" in printed


def _stored_remarks(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["sanctions", "import", *_files(tmp_path), "--published", "2026-11-20", "--database-url", url])
    capsys.readouterr()
    imported = parse_csv_set(SDN, ALT, ADD, date(2026, 11, 20))
    database = Database(url)
    try:
        with database.unit_of_work() as uow:
            stored = SqlSanctionsListRepository(uow.session).newest()
            assert stored is not None
            assert {n.remarks for n in stored.entry(9001)} == {"DOB 01 Jan 1970"}  # the name and its alias
            assert stored.entry_fingerprint(9001) == imported.entry_fingerprint(9001)
            # a list stored before the remarks were kept (five items a name) loads without them
            row = uow.session.get(SanctionsNameListRow, stored.version.label)
            assert row is not None
            row.names = [names[:5] for names in row.names]
            uow.session.flush()
            uow.session.expire_all()
            older = SqlSanctionsListRepository(uow.session).newest()
            assert older is not None
            assert {n.remarks for n in older.names} == {""}
            assert older.entry_fingerprint(9001) != imported.entry_fingerprint(9001)
    finally:
        database.dispose()


def test_an_imported_entry_keeps_its_identifying_remarks_on_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _stored_remarks(f"sqlite:///{tmp_path / 'creditmesh.db'}", tmp_path, capsys)


def test_an_imported_entry_keeps_its_identifying_remarks_on_postgresql(
    postgres_schema: Callable[[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _stored_remarks(postgres_schema("sanctions_remarks"), tmp_path, capsys)
