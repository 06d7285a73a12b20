"""The committed scorecard: deterministic, monotone where listed, no prohibited characteristic, pure at run time."""

from __future__ import annotations

import itertools
import subprocess
import sys
from decimal import Decimal

import pytest

from risk.scorecard import CURRENT_MODEL_VERSION, Value, load_scorecard

pytestmark = pytest.mark.unit

PROHIBITED = {"personal_status_and_sex", "age_in_years", "foreign_worker", "age", "sex", "foreign"}


def test_no_prohibited_characteristic_is_used() -> None:
    card = load_scorecard()
    names = {c.name for c in card.characteristics}
    columns = {c.get("column", c["name"]) for c in card.artifact["characteristics"]}
    assert not (names | columns) & PROHIBITED
    assert not any(word in name for name in names for word in ("age", "sex", "foreign", "personal"))
    assert len(columns) == len(names) == 11
    assert set(card.artifact["excluded_characteristics"]) == {
        "personal_status_and_sex",
        "age_in_years",
        "foreign_worker",
    }


def test_listed_monotone_constraints_hold() -> None:
    card = load_scorecard()
    by_name = {c.name: c for c in card.characteristics}
    # event rate ascending in the value: a larger value never scores better
    for name in ("duration_months", "credit_amount", "installment_rate"):
        assert by_name[name].monotone == "ascending"
        assert all(a >= b for a, b in itertools.pairwise(by_name[name].bin_points)), name
    # event rate descending: more savings / longer employment never scores worse
    for name in ("savings", "employment"):
        assert by_name[name].monotone == "descending"
        assert all(a <= b for a, b in itertools.pairwise(by_name[name].bin_points)), name
    checking = by_name["checking_account"].category_points
    assert checking["negative"] <= checking["low"] <= checking["high"]
    # and in the raw values, not only by bin: a longer term never scores better
    points = [by_name["duration_months"].points(m) for m in range(1, 80)]
    assert all(a is not None and b is not None and a >= b for a, b in itertools.pairwise(points))


GOOD: dict[str, Value] = {
    "checking_account": "high",
    "duration_months": 12,
    "credit_history": "paid_duly_so_far",
    "purpose": "used_car",
    "credit_amount": Decimal(2000),
    "savings": 3,
    "employment": 4,
    "installment_rate": 1,
    "property": "real_estate",
    "other_installment_plans": "none",
    "housing": "own",
}


def test_scoring_is_deterministic_and_within_the_scale() -> None:
    card = load_scorecard()
    first = card.score(GOOD)
    assert all(card.score(dict(GOOD)) == first for _ in range(50))
    assert 300 <= first.score <= 850
    assert first.score == card.intercept_points + sum(first.points.values())
    assert Decimal(0) < first.pd < Decimal("0.1")


def test_missing_and_unseen_values_take_the_worst_bin() -> None:
    card = load_scorecard()
    worst = {c.name: c.worst_points for c in card.characteristics}
    for name in ("checking_account", "savings", "purpose"):
        for value in (None, "never-seen-category" if name != "savings" else "x"):
            result = card.score({**GOOD, name: value})
            assert result.points[name] == worst[name]
            assert name in result.unknown
    nothing = card.score({})
    assert nothing.score == max(card.scale.min_score, card.intercept_points + sum(worst.values()))
    assert nothing.score < card.score(GOOD).score - 200
    assert set(nothing.unknown) == set(worst)


def test_pd_falls_as_the_score_rises_and_doubles_odds_every_pdo() -> None:
    scale = load_scorecard().scale
    pds = [scale.pd(s) for s in range(300, 851, 10)]
    assert all(a > b for a, b in itertools.pairwise(pds))
    odds = [(1 - float(scale.pd(s))) / float(scale.pd(s)) for s in (scale.base_score, scale.base_score + scale.pdo)]
    assert odds[0] == pytest.approx(scale.base_odds, rel=1e-4)
    assert odds[1] == pytest.approx(2 * scale.base_odds, rel=1e-4)


def test_request_path_imports_no_training_library() -> None:
    code = (
        "import sys, risk.policy, risk.attestation, risk.velocity, risk.onchain;"
        "risk.scorecard.load_scorecard();"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('pandas','sklearn','numpy','optbinning','scipy')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_artifact_metrics_meet_the_targets() -> None:
    metrics = load_scorecard(CURRENT_MODEL_VERSION).artifact["metrics"]
    assert metrics["cv5_auc"] >= 0.76
    assert metrics["test_auc"] >= 0.76
    assert metrics["test_gini"] == pytest.approx(2 * metrics["test_auc"] - 1, abs=1e-4)
