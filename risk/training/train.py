"""Train the WoE + logistic-regression scorecard on German Credit and write its versioned JSON artifact.

    uv run --frozen python -m risk.training.train            # writes risk/artifacts/scorecard-v1.json

Training-time only (pandas, optbinning, scikit-learn); the request path reads the artifact through
``risk.scorecard`` and never imports this module. Everything random is seeded with ``SEED``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from optbinning import BinningProcess
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from risk.scorecard import ARTIFACT_DIR, CURRENT_MODEL_VERSION, Scorecard

DATA = Path(__file__).resolve().parent.parent / "data" / "german-credit.csv"
SEED = 42
TEST_SIZE = 0.3
FOLDS = 5
# Points: 700 at 20:1 odds good:bad, 40 points to double the odds, clamped to 300–850.
SCALE = {"base_score": 700, "base_odds": 20, "pdo": 40, "min_score": 300, "max_score": 850}

# Excluded by law or policy (docs/model-card.md): ECOA / Regulation B prohibited bases and fair-lending policy.
EXCLUDED = ("personal_status_and_sex", "age_in_years", "foreign_worker")
# In the data but not in the model: no information once binned (IV < 0.02: optbinning merged every bin of
# other_debtors; existing_credits had IV 0.002 and a wrong-signed coefficient), or not a question we ask.
NOT_USED = (
    "other_debtors_or_guarantors",
    "number_of_existing_credits_at_this_bank",
    "telephone",
    "present_residence_since",
    "job",
    "number_of_people_being_liable_to_provide_maintenance_for",
)

# The model's characteristics: name -> (data column, kind, monotone event-rate trend or None, code map or None).
# A numeric code map turns an ordered band into an ordinal; code -1 is a special bin kept apart from the order.
CHECKING = {
    "... < 0 DM": "negative",
    "0 <= ... < 200 DM": "low",
    "... >= 200 DM / salary assignments for at least 1 year": "high",
    "no checking account": "none",
}
HISTORY = {
    "no credits taken/ all credits paid back duly": "no_credits_or_all_paid",
    "all credits at this bank paid back duly": "all_paid_at_this_lender",
    "existing credits paid back duly till now": "paid_duly_so_far",
    "delay in paying off in the past": "delayed_in_past",
    "critical account/ other credits existing (not at this bank)": "critical_or_credits_elsewhere",
}
PURPOSE = {
    "car (new)": "new_car",
    "car (used)": "used_car",
    "furniture/equipment": "furniture",
    "radio/television": "electronics",
    "domestic appliances": "appliances",
    "repairs": "repairs",
    "education": "education",
    "retraining": "retraining",
    "business": "business",
    "others": "other",
}
SAVINGS = {
    "unknown/ no savings account": -1,
    "... < 100 DM": 0,
    "100 <= ... < 500 DM": 1,
    "500 <= ... < 1000 DM": 2,
    "... >= 1000 DM": 3,
}
EMPLOYMENT = {
    "unemployed": 0,
    "... < 1 year": 1,
    "1 <= ... < 4 years": 2,
    "4 <= ... < 7 years": 3,
    "... >= 7 years": 4,
}
PROPERTY = {
    "real estate": "real_estate",
    "building society savings agreement/ life insurance": "savings_or_insurance",
    "car or other, not in attribute Savings account/bonds": "car_or_other",
    "unknown / no property": "none",
}
INSTALLMENT_PLANS = {"none": "none", "bank": "bank", "stores": "stores"}
HOUSING = {"own": "own", "rent": "rent", "for free": "free"}


@dataclass(frozen=True, slots=True)
class Spec:
    column: str
    kind: str
    monotone: str | None = None
    codes: dict[str, Any] | None = None
    special: tuple[int, ...] = ()


SPECS: dict[str, Spec] = {
    "checking_account": Spec("status_of_existing_checking_account", "categorical", codes=CHECKING),
    "duration_months": Spec("duration_in_month", "numeric", "ascending"),
    "credit_history": Spec("credit_history", "categorical", codes=HISTORY),
    "purpose": Spec("purpose", "categorical", codes=PURPOSE),
    "credit_amount": Spec("credit_amount", "numeric", "ascending"),
    "savings": Spec("savings_account_and_bonds", "numeric", "descending", SAVINGS, special=(-1,)),
    "employment": Spec("present_employment_since", "numeric", "descending", EMPLOYMENT),
    "installment_rate": Spec("installment_rate_in_percentage_of_disposable_income", "numeric", "ascending"),
    "property": Spec("property", "categorical", codes=PROPERTY),
    "other_installment_plans": Spec("other_installment_plans", "categorical", codes=INSTALLMENT_PLANS),
    "housing": Spec("housing", "categorical", codes=HOUSING),
}
# Ordering constraints on categorical characteristics, checked on the fitted points (tests and ``_check``):
# each list runs from the riskiest value to the safest, and points never fall along it.
CATEGORICAL_ORDER: dict[str, tuple[str, ...]] = {"checking_account": ("negative", "low", "high")}
# The excluded characteristics, added back only to measure what excluding them cost.
EXCLUDED_SPECS: dict[str, Spec] = {
    "age_in_years": Spec("age_in_years", "numeric"),
    "personal_status_and_sex": Spec("personal_status_and_sex", "categorical"),
    "foreign_worker": Spec("foreign_worker", "categorical"),
}


def load_frame(path: Path = DATA) -> tuple[pd.DataFrame, npt.NDArray[Any], pd.DataFrame]:
    """The model's characteristics, the target (1 = bad) and the excluded columns, from the CSV."""
    raw = pd.read_csv(path)
    frame = pd.DataFrame(
        {name: raw[spec.column].map(spec.codes) if spec.codes else raw[spec.column] for name, spec in SPECS.items()}
    )
    if frame.isna().any().any():
        raise ValueError("the CSV holds a value the code maps do not know")
    target = (raw["creditability"] == "bad").astype(int).to_numpy()
    return frame, target, raw[list(EXCLUDED_SPECS)]


def _binning(specs: dict[str, Spec]) -> BinningProcess:
    params = {}
    for name, spec in specs.items():
        fit: dict[str, Any] = {}
        if spec.monotone:
            fit["monotonic_trend"] = spec.monotone
        if spec.special:
            fit["special_codes"] = list(spec.special)
        params[name] = fit
    return BinningProcess(
        list(specs),
        categorical_variables=[n for n, s in specs.items() if s.kind == "categorical"],
        binning_fit_params=params,
        min_prebin_size=0.05,
        selection_criteria=None,
    )


def _fit(x: pd.DataFrame, y: npt.NDArray[Any], specs: dict[str, Spec]) -> tuple[BinningProcess, LogisticRegression]:
    binning = _binning(specs).fit(x, y)
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=SEED).fit(binning.transform(x), y)
    return binning, model


def _cv_auc(x: pd.DataFrame, y: npt.NDArray[Any], specs: dict[str, Spec]) -> float:
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    aucs = []
    for fit_rows, held_rows in folds.split(x, y):
        binning, model = _fit(x.iloc[fit_rows], y[fit_rows], specs)
        proba = model.predict_proba(binning.transform(x.iloc[held_rows]))[:, 1]
        aucs.append(roc_auc_score(y[held_rows], proba))
    return float(np.mean(aucs))


def _single_split_auc(x: pd.DataFrame, y: npt.NDArray[Any], specs: dict[str, Spec]) -> float:
    x_fit, x_test, y_fit, y_test = train_test_split(x, y, test_size=TEST_SIZE, stratify=y, random_state=SEED)
    binning, model = _fit(x_fit, y_fit, specs)
    return float(roc_auc_score(y_test, model.predict_proba(binning.transform(x_test))[:, 1]))


def _characteristic(
    name: str, spec: Spec, binning: BinningProcess, coefficient: float, factor: float
) -> dict[str, Any]:
    optb = binning.get_binned_variable(name)
    table = optb.binning_table.build()
    rows = [table.loc[i] for i in table.index if i != "Totals"]
    regular = [r for r in rows if str(r["Bin"]) not in ("Special", "Missing")]

    def points(woe: float) -> int:
        # ln(odds good) gains -coefficient · WoE (optbinning's WoE is ln(non-event share / event share))
        return round(-coefficient * float(woe) * factor)

    def stats(row: Any) -> dict[str, Any]:
        return {
            "count": int(row["Count"]),
            "event_rate": round(float(row["Event rate"]), 6),
            "woe": round(float(row["WoE"]), 6),
            "points": points(row["WoE"]),
        }

    out: dict[str, Any] = {"name": name, "column": spec.column, "kind": spec.kind, "monotone": spec.monotone}
    out["coefficient"] = round(coefficient, 6)
    out["iv"] = round(float(table.loc["Totals", "IV"]), 6)
    if spec.kind == "numeric":
        out["splits"] = [float(s) for s in optb.splits]
        out["bins"] = [{"range": str(r["Bin"]), **stats(r)} for r in regular]
        special = [r for r in rows if str(r["Bin"]) == "Special"]
        out["special"] = [{"code": code, **stats(special[0])} for code in spec.special]
    else:
        out["bins"] = [{"categories": sorted(str(c) for c in r["Bin"]), **stats(r)} for r in regular]
        seen = {c for b in out["bins"] for c in b["categories"]}
        missing_codes = sorted(set((spec.codes or {}).values()) - seen)
        if missing_codes:
            raise ValueError(f"{name}: categories {missing_codes} fell out of the binning")
    return out


def _ks(y: npt.NDArray[Any], score: npt.NDArray[Any]) -> float:
    """Kolmogorov–Smirnov: the largest gap between the cumulative score distributions of bads and goods."""
    thresholds = np.unique(score)
    bads, goods = score[y == 1], score[y == 0]
    gaps = [abs((bads <= t).mean() - (goods <= t).mean()) for t in thresholds]
    return float(max(gaps))


def _reliability(y: npt.NDArray[Any], pd_hat: npt.NDArray[Any], bands: int = 5) -> list[dict[str, Any]]:
    """Predicted vs observed default rate by quantile band of predicted PD."""
    order = np.argsort(pd_hat, kind="stable")
    out = []
    for i, rows in enumerate(np.array_split(order, bands), start=1):
        out.append(
            {
                "band": i,
                "count": len(rows),
                "pd_from": round(float(pd_hat[rows].min()), 4),
                "pd_to": round(float(pd_hat[rows].max()), 4),
                "mean_pd": round(float(pd_hat[rows].mean()), 4),
                "observed_bad_rate": round(float(y[rows].mean()), 4),
            }
        )
    return out


def _score_rows(scorecard: Scorecard, frame: pd.DataFrame) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    scores, pds = [], []
    for record in frame.to_dict(orient="records"):
        result = scorecard.score({k: (int(v) if isinstance(v, int | np.integer) else v) for k, v in record.items()})
        scores.append(result.score)
        pds.append(float(result.pd))
    return np.array(scores), np.array(pds)


def _distribution(scores: npt.NDArray[Any], lo: int, hi: int, width: int = 50) -> list[dict[str, Any]]:
    edges = list(range(lo, hi, width))
    out = []
    for start in edges:
        end = start + width
        in_band = (scores >= start) & ((scores < end) if end < hi else (scores <= hi))
        out.append({"from": start, "to": end, "share": round(float(in_band.mean()), 4)})
    return out


def train(path: Path = DATA, version: str = CURRENT_MODEL_VERSION) -> dict[str, Any]:
    """Fit on the training split, measure on the held-out split and by cross-validation; return the artifact."""
    frame, target, excluded = load_frame(path)
    x_fit, x_test, y_fit, y_test = train_test_split(
        frame, target, test_size=TEST_SIZE, stratify=target, random_state=SEED
    )
    binning, model = _fit(x_fit, y_fit, SPECS)
    factor = SCALE["pdo"] / math.log(2)
    offset = SCALE["base_score"] - factor * math.log(SCALE["base_odds"])
    coefficients = dict(zip(model.feature_names_in_, model.coef_[0], strict=True))
    artifact: dict[str, Any] = {
        "model_version": version,
        "trained_on": {
            "data": "risk/data/german-credit.csv",
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "rows": len(frame),
            "seed": SEED,
            "test_size": TEST_SIZE,
            "target": "creditability == 'bad'",
        },
        "excluded_characteristics": list(EXCLUDED),
        "not_used_characteristics": list(NOT_USED),
        "scale": SCALE,
        "intercept_points": round(offset - factor * float(model.intercept_[0])),
        "characteristics": [
            _characteristic(name, spec, binning, float(coefficients[name]), factor) for name, spec in SPECS.items()
        ],
        "categorical_order": {k: list(v) for k, v in CATEGORICAL_ORDER.items()},
    }
    scorecard = Scorecard(artifact)
    test_scores, test_pd = _score_rows(scorecard, x_test)
    all_scores, _ = _score_rows(scorecard, frame)
    auc = float(roc_auc_score(y_test, -test_scores))
    with_excluded = {**SPECS, **EXCLUDED_SPECS}
    frame_with_excluded = pd.concat([frame, excluded], axis=1)
    artifact["metrics"] = {
        "test_auc": round(auc, 4),
        "test_gini": round(2 * auc - 1, 4),
        "test_ks": round(_ks(y_test, test_scores), 4),
        "test_brier": round(float(np.mean((test_pd - y_test) ** 2)), 4),
        "test_bad_rate": round(float(y_test.mean()), 4),
        "cv5_auc": round(_cv_auc(frame, target, SPECS), 4),
        "cv5_auc_with_excluded": round(_cv_auc(frame_with_excluded, target, with_excluded), 4),
        "test_auc_pipeline": round(_single_split_auc(frame, target, SPECS), 4),
        "test_auc_pipeline_with_excluded": round(_single_split_auc(frame_with_excluded, target, with_excluded), 4),
        "reliability": _reliability(y_test, test_pd),
    }
    artifact["baseline"] = {
        "population": "all 1,000 applicants of the data set",
        "score_mean": round(float(all_scores.mean()), 2),
        "score_distribution": _distribution(all_scores, SCALE["min_score"], SCALE["max_score"]),
    }
    _check(scorecard)
    return artifact


def _check(scorecard: Scorecard) -> None:
    """Refuse to write an artifact that breaks a listed monotonicity constraint."""
    for characteristic in scorecard.characteristics:
        pts = characteristic.bin_points
        if characteristic.monotone == "ascending" and any(a < b for a, b in itertools.pairwise(pts)):
            raise ValueError(f"{characteristic.name}: points rise with the value")
        if characteristic.monotone == "descending" and any(a > b for a, b in itertools.pairwise(pts)):
            raise ValueError(f"{characteristic.name}: points fall with the value")
        order = CATEGORICAL_ORDER.get(characteristic.name)
        if order:
            got = [characteristic.category_points[c] for c in order]
            if got != sorted(got):
                raise ValueError(f"{characteristic.name}: points along {order} are {got}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--version", default=CURRENT_MODEL_VERSION)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    artifact = train(args.data, args.version)
    out = args.out or ARTIFACT_DIR / f"{args.version}.json"
    out.write_text(json.dumps(artifact, indent=1) + "\n", encoding="utf-8")
    metrics = {k: v for k, v in artifact["metrics"].items() if k != "reliability"}
    print(json.dumps({"artifact": str(out), **metrics}, indent=1))


if __name__ == "__main__":
    main()
