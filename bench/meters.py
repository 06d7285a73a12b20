"""What a benchmark charges each process with: CPU seconds read from Linux's /proc (a process, a set of them, a
process with its children such as PostgreSQL's backends) and PostgreSQL's transaction count, for the benches that
report CPU per request or per loan (``bench/quote_path.py``, ``bench/scale.py``, ``bench/scale_loans.py``)."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads; OSError when it is gone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_total(pids: list[int]) -> float:
    """The CPU seconds of ``pids`` (a process gone counts nothing, one restarted meanwhile counts from zero)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


@dataclass(frozen=True, slots=True)
class Meters:
    """The processes each side is charged with: the accepts with the API processes (and the balancer in front of
    them), PostgreSQL and the devnet; the raw sends with this process (their client) and the devnet."""

    api: dict[str, int]
    anvil: int | None = None
    postgres_data_dir: Path | None = None
    database_url: str | None = None

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each metered part (a process restarted meanwhile counts from zero)."""
        found = {name: cpu_total([pid]) for name, pid in self.api.items()}
        if self.anvil is not None:
            found["anvil"] = cpu_total([self.anvil])
        postmaster = postmaster_pid(self.postgres_data_dir)
        if postmaster is not None:
            found["postgres"] = tree_cpu_seconds(postmaster)
        return found

    def transactions(self) -> int | None:
        """PostgreSQL's committed and rolled-back transactions so far (``pg_stat_database``; a backend reports its
        counts when it goes idle, within ``STATS_DELAY``)."""
        if self.database_url is None or not self.database_url.startswith("postgresql"):
            return None
        engine = sa.create_engine(self.database_url, poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                query = (
                    "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database WHERE datname = current_database()"
                )
                return int(connection.execute(sa.text(query)).scalar_one())
        finally:
            engine.dispose()


#: seconds PostgreSQL's backends may keep their transaction counts before reporting them (PGSTAT_IDLE_INTERVAL)
STATS_DELAY = 11.0


def background_rate(meters: Meters) -> float | None:
    """PostgreSQL transactions per second while nothing is asked of the API (its leases, its readiness…), over
    ``STATS_DELAY`` seconds once what came before is reported: subtracted from what the accepts' window counts."""
    time.sleep(STATS_DELAY)
    first = meters.transactions()
    if first is None:
        return None
    time.sleep(STATS_DELAY)
    last = meters.transactions()
    return None if last is None else (last - first) / STATS_DELAY


def tree_cpu_seconds(parent: int) -> float:
    """The CPU of ``parent``, of its children still running and of those that ended (PostgreSQL's backends)."""
    try:
        fields = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(fields[n]) for n in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            child = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if child[1] == str(parent):
            total += (int(child[11]) + int(child[12])) / os.sysconf("SC_CLK_TCK")
    return total


def postmaster_pid(data_dir: Path | None) -> int | None:
    """The PostgreSQL server's pid, read from its data directory (None without one, or when it is not running)."""
    if data_dir is None:
        return None
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def ms_per_loan(before: dict[str, float], after: dict[str, float], loans: int) -> dict[str, float]:
    """Milliseconds per loan of each part between two ``Meters.cpu`` readings."""
    return {name: round((after[name] - before.get(name, 0.0)) * 1000 / max(loans, 1), 2) for name in after}


#: the machine is settled when the platform's processes use under this share of a core over a window of seconds
SETTLED, SETTLE_WINDOW, SETTLE_LIMIT = 0.15, 0.4, 15.0


def settle(meters: Meters | None) -> None:
    """Wait until the platform's processes (the API's, PostgreSQL, anvil) together use under ``SETTLED`` of a core
    over ``SETTLE_WINDOW`` seconds (at most ``SETTLE_LIMIT`` s): what the last step set going (the watchers' and the
    indexer's reading of new blocks, the outbox) does not run in the next one's timed window. Without meters, one
    second."""
    if meters is None:
        time.sleep(1.0)
        return
    deadline = time.monotonic() + SETTLE_LIMIT
    before = sum(meters.cpu().values())
    while time.monotonic() < deadline:
        time.sleep(SETTLE_WINDOW)
        after = sum(meters.cpu().values())
        if after - before < SETTLED * SETTLE_WINDOW:
            return
        before = after
