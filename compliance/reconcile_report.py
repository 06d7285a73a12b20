"""A reconciliation run's reports: JSON (everything), CSV (the discrepancy table) and one self-contained HTML page
an auditor opens offline (inline style, no script, no fetch): the run, a summary per chain with its pools' deposits
and withdrawals, and the discrepancy table, each item linked to its transaction (the chain's block-explorer URL
template, ``ChainConfig.explorer_tx_url``) and to its record in the API. Pure: values in, text out."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from compliance.reconcile import Category

CSV_COLUMNS = ("chain", "category", "subject", "what", "detail", "txHash", "blockNumber", "recordRef")


@dataclass(frozen=True, slots=True)
class RunReport:
    run_id: str
    started_by: str
    created_at: str
    finished_at: str | None
    status: str
    digest: str | None
    chains: Sequence[Mapping[str, Any]]
    counts: Mapping[str, int]
    items: Sequence[Mapping[str, Any]]
    explorers: Mapping[str, str | None] = field(default_factory=dict)  # chain name → tx URL template with {tx}
    record_url: str = "/v1/loans/{ref}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "startedBy": self.started_by,
            "createdAt": self.created_at,
            "finishedAt": self.finished_at,
            "status": self.status,
            "digest": self.digest,
            "counts": dict(self.counts),
            "chains": list(self.chains),
            "discrepancies": list(self.items),
        }


def to_json(report: RunReport) -> str:
    return json.dumps(report.as_json(), indent=2, sort_keys=True)


def to_csv(report: RunReport) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for item in report.items:
        writer.writerow({column: "" if item.get(column) is None else item.get(column) for column in CSV_COLUMNS})
    return out.getvalue()


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#1b1f24}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}code{font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _tx_link(report: RunReport, item: Mapping[str, Any]) -> str:
    tx = item.get("txHash")
    if not tx:
        return ""
    template = report.explorers.get(str(item.get("chain")))
    text = f"<code>{_e(tx)}</code>"
    return f'<a href="{_e(template.replace("{tx}", str(tx)))}">{text}</a>' if template else text


def _record_link(report: RunReport, item: Mapping[str, Any]) -> str:
    ref = item.get("recordRef")
    if not ref:
        return ""
    if str(ref).startswith("0x"):  # a governance operation id: no API page
        return f"<code>{_e(ref)}</code>"
    return f'<a href="{_e(report.record_url.replace("{ref}", str(ref)))}"><code>{_e(ref)}</code></a>'


def to_html(report: RunReport) -> str:
    discrepancies = sum(count for category, count in report.counts.items() if category != Category.MATCHED.value)
    verdict = (
        '<p class="ok">No discrepancies.</p>'
        if discrepancies == 0
        else f'<p class="bad">{discrepancies} discrepancies.</p>'
    )
    header = "".join(f"<th>{_e(category.value)}</th>" for category in Category)
    chain_rows = []
    pool_rows = []
    for chain in report.chains:
        counts = chain.get("counts", {})
        cells = "".join(f'<td class="num">{_e(counts.get(category.value, 0))}</td>' for category in Category)
        chain_rows.append(
            f'<tr><td>{_e(chain.get("chain"))}</td><td class="num">{_e(chain.get("fromBlock"))}'
            f'–{_e(chain.get("toBlock"))}</td><td class="num">{_e(chain.get("facts"))}</td>{cells}</tr>'
        )
        for pool in chain.get("pools", []):
            pool_rows.append(
                f"<tr><td>{_e(chain.get('chain'))}</td><td>{_e(pool['pool'])}</td>"
                f'<td class="num">{_e(pool["deposits"])}</td><td class="num">{_e(pool["deposited"])}</td>'
                f'<td class="num">{_e(pool["withdrawals"])}</td><td class="num">{_e(pool["withdrawn"])}</td></tr>'
            )
    item_rows = [
        f'<tr class="discrepancy"><td>{_e(item.get("chain"))}</td><td>{_e(item.get("category"))}</td>'
        f"<td>{_e(item.get('subject'))}</td><td>{_e(item.get('what'))}</td><td>{_e(item.get('detail'))}</td>"
        f'<td>{_tx_link(report, item)}</td><td class="num">{_e(item.get("blockNumber"))}</td>'
        f"<td>{_record_link(report, item)}</td></tr>"
        for item in report.items
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>creditmesh reconciliation {_e(report.run_id)}</title>
<style>{_STYLE}</style></head><body>
<h1>Reconciliation {_e(report.run_id)}</h1>
<p>Started by {_e(report.started_by)} at {_e(report.created_at)}; finished {_e(report.finished_at)};
status <b>{_e(report.status)}</b>. Result digest <code id="digest">{_e(report.digest)}</code>.</p>
{verdict}
<h2>Per chain</h2>
<table id="chains"><thead><tr><th>chain</th><th>blocks</th><th>facts</th>{header}</tr></thead>
<tbody>{"".join(chain_rows)}</tbody></table>
<h2>Pool deposits and withdrawals</h2>
<table id="pools"><thead><tr><th>chain</th><th>pool</th><th>deposits</th><th>deposited</th><th>withdrawals</th>
<th>withdrawn</th></tr></thead><tbody>{"".join(pool_rows)}</tbody></table>
<h2>Discrepancies</h2>
<table id="discrepancies"><thead><tr><th>chain</th><th>category</th><th>subject</th><th>what</th><th>detail</th>
<th>transaction</th><th>block</th><th>record</th></tr></thead><tbody>{"".join(item_rows)}</tbody></table>
</body></html>
"""
