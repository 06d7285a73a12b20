"""Scoring speed: the pure-Python scorecard read from the artifact vs scikit-learn on the same model, side by side.

    uv run --frozen python -m bench.risk_scoring

Fits the training pipeline once (same seed and split as the artifact), then times per single applicant:
our ``Scorecard.score`` on a characteristics dict; scikit-learn's ``predict_proba`` on an already WoE-transformed
row (the logistic step alone); and optbinning's transform + ``predict_proba`` (what scoring one raw applicant with
the training stack costs). Also times the whole ``assess`` (mapping, scoring, policy, inputs hash).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from decimal import Decimal

from risk.policy import assess
from risk.profile import CreditProfile, CreditRequestFacts
from risk.scorecard import load_scorecard


def per_call_us(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Median of five timed batches, microseconds per call."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - start > seconds / 10:
            break
        calls *= 2
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return sorted(samples)[2]


def main() -> None:
    warnings.filterwarnings("ignore")
    from sklearn.model_selection import train_test_split

    from risk.training.train import SEED, SPECS, TEST_SIZE, _fit, load_frame

    frame, target, _ = load_frame()
    x_fit, x_test, y_fit, _ = train_test_split(frame, target, test_size=TEST_SIZE, stratify=target, random_state=SEED)
    binning, model = _fit(x_fit, y_fit, SPECS)
    card = load_scorecard()
    row_frame = x_test.iloc[[0]]
    row_woe = binning.transform(row_frame).to_numpy()
    row = {k: (int(v) if isinstance(v, int) or (hasattr(v, "item") and not isinstance(v, str)) else v)
           for k, v in row_frame.to_dict(orient="records")[0].items()}  # fmt: skip
    profile = CreditProfile(checking=Decimal(500), savings=Decimal(800), credit_history="paid_duly_so_far",
                            employment_years=Decimal(5), monthly_disposable_income=Decimal(3000),
                            property="car_or_other", other_installment_plans="none", housing="rent")  # fmt: skip
    request = CreditRequestFacts(amount=Decimal(2500), asset="USDC", term_days=360, purpose="furniture")

    ours = per_call_us(lambda: card.score(row))
    sk_lr = per_call_us(lambda: model.predict_proba(row_woe))
    sk_full = per_call_us(lambda: model.predict_proba(binning.transform(row_frame)))
    decide = per_call_us(lambda: assess(profile, request, None))
    print(f"{'what (one applicant)':58} {'µs/score':>10} {'ratio to ours':>14}")
    print(f"{'risk.scorecard.Scorecard.score (artifact, pure Python)':58} {ours:10.2f} {1:14.1f}")
    print(f"{'sklearn predict_proba on a WoE row (logistic step only)':58} {sk_lr:10.2f} {sk_lr / ours:14.1f}")
    print(f"{'optbinning transform + sklearn predict_proba':58} {sk_full:10.2f} {sk_full / ours:14.1f}")
    print(f"{'risk.policy.assess (map + score + policy + inputs hash)':58} {decide:10.2f} {decide / ours:14.1f}")


if __name__ == "__main__":
    main()
