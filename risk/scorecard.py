"""Run-time scoring from the versioned JSON artifact alone: pure Python, no pandas, NumPy or scikit-learn.

The artifact (written by ``risk/training/train.py``) lists, per characteristic, its bins and the integer points
each bin is worth. A score is the sum of the points of the applicant's bins, clamped to the scale's range.

Unknown values have one defined treatment: a characteristic that is missing (``None``), or whose value the model
never saw (an unknown category), gets the points of its *worst* bin, and is reported in ``ScoreCard.unknown``
so that the policy can say so and decline an incomplete application. An applicant who tells us nothing therefore
scores as the worst applicant, never as an average or a good one.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from risk.errors import ArtifactError

ARTIFACT_DIR = Path(__file__).parent / "artifacts"
CURRENT_MODEL_VERSION = "scorecard-v1"

Value = str | int | Decimal | None


@dataclass(frozen=True, slots=True)
class Scale:
    """Points on a familiar scale: ``score = offset + factor · ln(odds good:bad)``, ``factor = pdo / ln 2``."""

    base_score: int
    base_odds: int
    pdo: int
    min_score: int
    max_score: int

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)

    def pd(self, score: int) -> Decimal:
        """Probability of default implied by a score, 6 decimal places (half-even)."""
        log_odds_good = (score - self.offset) / self.factor
        pd = 1.0 / (1.0 + math.exp(log_odds_good))
        return Decimal(repr(pd)).quantize(Decimal("0.000001"))


@dataclass(frozen=True, slots=True)
class Characteristic:
    """One characteristic's bins compiled for lookup."""

    name: str
    kind: str  # "numeric" | "categorical"
    splits: tuple[float, ...]  # numeric: bin i holds splits[i-1] <= x < splits[i]
    bin_points: tuple[int, ...]  # numeric: points per bin, len(splits) + 1
    special_points: dict[int, int]  # numeric: special codes binned apart (e.g. "no savings account")
    category_points: dict[str, int]  # categorical: category -> points
    worst_points: int
    best_points: int
    monotone: str | None

    def points(self, value: Value) -> int | None:
        """Points for ``value``, or ``None`` when the value is missing or unknown to the model."""
        if value is None:
            return None
        if self.kind == "categorical":
            return self.category_points.get(str(value))
        if isinstance(value, str):
            return None
        if isinstance(value, int) and value in self.special_points:
            return self.special_points[value]
        return self.bin_points[bisect_right(self.splits, value)]


@dataclass(frozen=True, slots=True)
class ScoreCard:
    """The outcome of scoring one applicant."""

    score: int
    pd: Decimal
    points: dict[str, int]
    unknown: tuple[str, ...]
    # characteristics ranked by points lost against their best bin, largest loss first (adverse-action order)
    shortfalls: tuple[tuple[str, int], ...]


class Scorecard:
    """A loaded artifact: ``score(characteristics)`` is deterministic and needs nothing else."""

    def __init__(self, artifact: dict[str, Any]) -> None:
        try:
            self.version: str = artifact["model_version"]
            self.scale = Scale(**artifact["scale"])
            self.intercept_points: int = artifact["intercept_points"]
            self.characteristics = tuple(_compile(c) for c in artifact["characteristics"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"malformed scorecard artifact: {exc}") from exc
        self.artifact = artifact
        self.names = frozenset(c.name for c in self.characteristics)

    def score(self, characteristics: dict[str, Value]) -> ScoreCard:
        total = self.intercept_points
        points: dict[str, int] = {}
        unknown: list[str] = []
        losses: list[tuple[str, int]] = []
        for characteristic in self.characteristics:
            got = characteristic.points(characteristics.get(characteristic.name))
            if got is None:
                unknown.append(characteristic.name)
                got = characteristic.worst_points
            points[characteristic.name] = got
            total += got
            losses.append((characteristic.name, characteristic.best_points - got))
        score = min(max(total, self.scale.min_score), self.scale.max_score)
        losses.sort(key=lambda item: (-item[1], item[0]))
        return ScoreCard(score, self.scale.pd(score), points, tuple(unknown), tuple(losses))


def _compile(raw: dict[str, Any]) -> Characteristic:
    bins = raw["bins"]
    if raw["kind"] == "numeric":
        splits = tuple(float(s) for s in raw["splits"])
        bin_points = tuple(int(b["points"]) for b in bins)
        if len(bin_points) != len(splits) + 1:
            raise ValueError(f"{raw['name']}: {len(bin_points)} bins for {len(splits)} splits")
        special = {int(s["code"]): int(s["points"]) for s in raw.get("special", [])}
        categories: dict[str, int] = {}
        every = [*bin_points, *special.values()]
    elif raw["kind"] == "categorical":
        splits, bin_points, special = (), (), {}
        categories = {str(cat): int(b["points"]) for b in bins for cat in b["categories"]}
        every = list(categories.values())
    else:
        raise ValueError(f"{raw['name']}: unknown kind {raw['kind']!r}")
    return Characteristic(
        name=raw["name"],
        kind=raw["kind"],
        splits=splits,
        bin_points=bin_points,
        special_points=special,
        category_points=categories,
        worst_points=min(every),
        best_points=max(every),
        monotone=raw.get("monotone"),
    )


def load_artifact(path: Path) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read scorecard artifact {path}: {exc}") from exc
    return document


@cache
def load_scorecard(version: str = CURRENT_MODEL_VERSION) -> Scorecard:
    """The committed scorecard of ``version`` (cached: the artifact is immutable once committed)."""
    scorecard = Scorecard(load_artifact(ARTIFACT_DIR / f"{version}.json"))
    if scorecard.version != version:
        raise ArtifactError(f"artifact {version}.json says it is {scorecard.version}")
    return scorecard
