"""An SDN entry's identifying remarks (date and place of birth, nationality, identity documents…) are part of the
listed entry and of its fingerprint: an OFAC update that adds or changes a listed date of birth reopens a review a
reviewer cleared on the old one ("born 1985, not 1970"); a remark that identifies no one (a link to another entry, a
note on the sanctions) leaves it standing."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from aggregator.borrowers import BorrowerFile
from aggregator.sanctions_review_store import InMemorySanctionsReviewStore, SanctionsReview
from aggregator.sanctions_reviews import SanctionsReviews
from compliance.decisions import Outcome
from compliance.jurisdiction import load_rules
from compliance.kyc import IdentityProfile
from compliance.sanctions.lists import AddressList, NameList, identifying_remarks, parse_name_list
from compliance.sanctions.ofac import parse_csv_set, parse_xml
from compliance.sanctions.review import PriorReview, ReviewState
from compliance.sanctions.screening import SanctionsScreen
from compliance.service import ComplianceService
from risk.profile import CreditProfile
from tests.support.screening import screen_accept
from tests.unit.compliance.test_ofac_import import ADD, ALT, SDN, XML

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 26, tzinfo=UTC)
WALLET = "0x" + "11" * 20
PUBLISHED = date(2026, 11, 20)
KOVALENKO = 9001  # "KOVALENKO, Dmytro Ivanovych", DOB 01 Jan 1970 in the test SDN.CSV's Remarks
#: a borrower with the listed name, born 1985: held, and cleared on the date of birth
BORROWER = IdentityProfile("Dmytro Ivanovych", "Kovalenko", date(1985, 3, 1), "US-FL")


def _sdn(remarks: bytes) -> bytes:
    return SDN.replace(b'"DOB 01 Jan 1970."', remarks)


def _names(remarks: bytes = b'"DOB 01 Jan 1970."') -> NameList:
    return parse_csv_set(_sdn(remarks), ALT, ADD, PUBLISHED)


def test_the_identifying_remarks_are_kept_and_the_rest_left_out() -> None:
    remarks = (
        "a.k.a. 'NO 1 TRADING'; DOB 01 Jan 1966; alt. DOB 1967; POB  Damascus, Syria; nationality Syria; citizen Syria;"
        " Passport N123 (Syria); National ID No. 456 (Syria); Tax ID No. 7701 (Russia); Gender Male; Linked To: "
        "NATIONAL ID BANK; Digital Currency Address - ETH 0x7F367cC41522cE07553e823bf3be79A889DEbe1B; Phone Number 12;"
        " Secondary sanctions risk: section 1(b) of Executive Order 13224; Website www.example.com."
    )
    assert identifying_remarks(remarks) == (
        "DOB 01 Jan 1966; alt. DOB 1967; POB Damascus, Syria; nationality Syria; citizen Syria; Passport N123 (Syria); "
        "National ID No. 456 (Syria); Tax ID No. 7701 (Russia); Gender Male"
    )
    assert identifying_remarks("-0-") == identifying_remarks("Linked To: HAMAS.") == ""


def test_every_name_of_an_entry_carries_its_remarks_in_every_form() -> None:
    assert {n.remarks for n in _names().entry(KOVALENKO)} == {"DOB 01 Jan 1970"}  # the name and its ALT.CSV alias
    assert {n.remarks for n in parse_csv_set(_sdn(b'"DOB 01 Jan 1970."'), None, None, PUBLISHED).entry(KOVALENKO)} == {
        "DOB 01 Jan 1970"
    }
    shipped_form = parse_name_list(
        _sdn(b"\"DOB 01 Jan 1970; a.k.a. 'DIMA K'.\""), "ofac-sdn-2026-11-20.csv", "2026-11-20"
    )
    assert [(n.name, n.remarks) for n in shipped_form.entry(KOVALENKO)] == [
        ("KOVALENKO, Dmytro Ivanovych", "DOB 01 Jan 1970"),
        ("DIMA K", "DOB 01 Jan 1970"),
    ]
    birth = (
        b"<dateOfBirthList><dateOfBirthItem><uid>1</uid><dateOfBirth>01 Jan 1970</dateOfBirth>"
        b"<mainEntry>true</mainEntry></dateOfBirthItem><dateOfBirthItem><uid>2</uid><dateOfBirth>1971</dateOfBirth>"
        b"<mainEntry>false</mainEntry></dateOfBirthItem></dateOfBirthList>"
        b"<nationalityList><nationality><uid>3</uid><country>Ukraine</country><mainEntry>true</mainEntry>"
        b"</nationality></nationalityList>"
        b"<idList><id><uid>4</uid><idType>Passport</idType><idNumber>EK123</idNumber><idCountry>Ukraine</idCountry></id>"
        b"</idList>"
    )
    xml = parse_xml(XML.replace(b"</programList>\n    <akaList>", b"</programList>" + birth + b"<akaList>"))
    assert {n.remarks for n in xml.entry(KOVALENKO)} == {
        "DOB 01 Jan 1970; alt. DOB 1971; nationality Ukraine; Passport EK123 (Ukraine)"
    }


def test_a_changed_date_of_birth_changes_the_entry_fingerprint_a_link_does_not() -> None:
    listed = _names().entry_fingerprint(KOVALENKO)
    assert _names(b'"DOB 01 Jan 1985."').entry_fingerprint(KOVALENKO) != listed  # OFAC corrects the date of birth
    assert _names(b'"DOB 01 Jan 1970; alt. DOB 1985."').entry_fingerprint(KOVALENKO) != listed  # or adds one
    assert _names(b'"DOB 01 Jan 1970; POB Kyiv, Ukraine."').entry_fingerprint(KOVALENKO) != listed
    assert _names(b'"DOB 01 Jan 1970; Linked To: BLUE HARBOR SHIPPING LLC."').entry_fingerprint(KOVALENKO) == listed
    assert _names(b"-0-").entry_fingerprint(KOVALENKO) != listed  # the date of birth withdrawn
    # an entry with no identifying remarks keeps the fingerprint of its names, type and program alone
    unremarked = _names(b"-0-")
    body = "\n".join(f"{n.name}|{n.sdn_type}|{n.program}|{n.alias_of or ''}" for n in unremarked.entry(KOVALENKO))
    assert unremarked.entry_fingerprint(KOVALENKO) == hashlib.sha256(body.encode()).hexdigest()


def _screening(service: ComplianceService, file: BorrowerFile, reviews: tuple[PriorReview, ...] = ()) -> Outcome:
    return screen_accept(service, replace(file.facts(), sanctions_reviews=reviews), "quote-1").outcome


def test_an_update_of_the_listed_date_of_birth_reopens_a_clearance_and_its_evidence_shows_it(
    shipped_lists: tuple[AddressList, NameList],
) -> None:
    """Cleared as "born 1985, not 1970"; OFAC then lists the entry as born 1985: the clearance no longer holds, the
    borrower is screened as the listed name again, and the reviewed review's evidence reads entry_changed."""
    names = _names()
    screen = SanctionsScreen(shipped_lists[0], names)
    service = ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))
    file = BorrowerFile("b1", WALLET, "US-FL", BORROWER, None, CreditProfile())  # type: ignore[arg-type]
    held = screen_accept(service, file.facts(), "quote-1")
    ((hit, outcome),) = held.name_hits
    assert hit.ent_num == KOVALENKO
    cleared = PriorReview(hit.ent_num, hit.entry_fingerprint, ReviewState.CLEARED, held.screened_identity)
    assert _screening(service, file, (cleared,)) is Outcome.ALLOW  # the clearance holds on the same list

    review = SanctionsReview(
        id="r1",
        borrower_id="b1",
        ent_num=hit.ent_num,
        entry_fingerprint=hit.entry_fingerprint,
        list_version=names.version.label,
        listed_name=hit.listed_name,
        primary_name=hit.primary_name,
        program=hit.program,
        score=hit.score,
        outcome=outcome.value,
        state=ReviewState.CLEARED.value,
        decision_id=held.decision_id,
        created_at=NOW,
        identity_fingerprint=held.screened_identity,
    )
    store = InMemorySanctionsReviewStore()
    store.tables.reviews[review.id] = review
    files = {"b1": file}
    queue = SanctionsReviews(store, _Files(files), service, clock=lambda: NOW)  # type: ignore[arg-type]
    assert not queue.evidence("r1").entry_changed

    service.screen = screen.with_names(_names(b'"DOB 01 Mar 1985."'))  # OFAC's update, reloaded
    assert _screening(service, file, (cleared,)) is Outcome.DENY  # the listed name, now born the same day
    assert queue.evidence("r1").entry_changed

    service.screen = screen.with_names(_names(b'"DOB 01 Jan 1970; Linked To: BLUE HARBOR SHIPPING LLC."'))
    assert _screening(service, file, (cleared,)) is Outcome.ALLOW  # a remark that identifies no one changes nothing
    assert not queue.evidence("r1").entry_changed


class _Files:
    def __init__(self, files: dict[str, BorrowerFile]) -> None:
        self.files = files

    def load(self, borrower_id: str) -> BorrowerFile | None:
        return self.files.get(borrower_id)

    def forget(self, borrower_id: str) -> None:
        pass
