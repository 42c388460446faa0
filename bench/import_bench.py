"""``python -m bench import``: a large CSV import into PostgreSQL, against its floor.

In one run, on one generated file:

- the import itself (``outdial.services.intake.csv_import.import_csv``), timed, with the peak
  resident memory of the importing process and its worker processes (sampled
  with psutil every 20 ms);
- the floor: ``phonenumbers.parse`` + ``format_number(E164)`` alone over the
  same numbers, spread over the same number of processes as the import uses,
  plus a raw ``COPY`` of the file into a bare all-text table.

The ratio import/floor says how much the import costs beyond the work no
import can avoid. The database is a fresh one, created and dropped here.
Prints a table, then one JSON object on the last line; writes
``bench/results/import.json``.

With ``--write-alone``, one more figure, in the same run and database: the
import's own database write alone (``ImportWriter``: the same SQL, batches of
``CHUNK_ROWS``, one transaction) of as many leads as the import accepted,
already valid and all distinct, into a campaign of their own. It is the part
of the import that runs on one PostgreSQL backend, on one core whatever the
number of workers: an import through that SQL takes at least as long.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import phonenumbers
import psutil
from sqlalchemy import create_engine, text

from outdial.services.campaigns import create_campaign
from outdial.services.intake.admissions import Admissions
from outdial.services.intake.csv_import import CHUNK_ROWS, admission_row, import_csv
from outdial.services.intake.import_writer import Batch, ImportWriter
from outdial.services.intake.phone_pool import worker_count
from outdial.services.timing.spec import TimingFields
from outdial.settings import Settings
from outdial.store import campaigns as campaign_store
from outdial.store.db import make_engine, normalise_url, upgrade
from outdial.store.lead_import import BatchRow

RESULTS = Path(__file__).resolve().parent / "results" / "import.json"
ADMIN_URL = os.environ.get("OUTDIAL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
_AREAS = ("212", "415", "312", "617", "305", "702", "206", "213", "404", "512")
_CITIES = ("Pune", "Austin", "Leeds", "Mumbai", "Boston", "Seattle")


def _number(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.5:
        return f"+1{rng.choice(_AREAS)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
    if kind < 0.8:
        return f"+91{rng.choice('6789')}{rng.randint(0, 999_999_999):09d}"
    if kind < 0.97:
        return f"+447{rng.randint(100_000_000, 999_999_999)}"
    return f"+91 {rng.randint(70000, 99999)} {rng.randint(0, 99999):05d}"  # spaced, still valid


def write_leads(path: Path, rows: int, seed: int = 7) -> None:
    """A lead file like real ones: mostly E.164, some spaced, ~1% repeated, ~1% garbage."""
    rng = random.Random(seed)
    recent: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(("phone", "name", "city", "amount"))
        for i in range(rows):
            roll = rng.random()
            if roll < 0.01 and recent:
                number = rng.choice(recent)
            elif roll < 0.02:
                number = f"not-a-number-{i}"
            else:
                number = _number(rng)
                if len(recent) < 1000:
                    recent.append(number)
            out.writerow((number, f"Lead {i}", rng.choice(_CITIES), f"{rng.randint(100, 99999)}.{i % 100:02d}"))


class PeakMemory:
    """The peak summed RSS of this process and its descendants, sampled on a thread."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.peak = 0
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                with suppress(psutil.Error):  # a worker that just exited
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def fresh_database() -> Iterator[str]:
    name = f"outdial_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(normalise_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _parse_format(chunk: list[str]) -> int:
    ok = 0
    for raw in chunk:
        try:
            number = phonenumbers.parse(raw, None)
        except phonenumbers.NumberParseException:
            continue
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        ok += 1
    return ok


def floor_phonenumbers(path: Path, workers: int) -> float:
    """phonenumbers parse + format alone over the file's numbers, on ``workers`` processes."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        numbers = [r[0] for r in reader]
    chunks = [numbers[i : i + 10_000] for i in range(0, len(numbers), 10_000)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_parse_format, chunks[:workers]))  # start the workers outside the timing
        started = time.perf_counter()
        list(pool.map(_parse_format, chunks))
        return time.perf_counter() - started


def floor_copy(url: str, path: Path) -> float:
    """A raw COPY of the file into a bare table of text columns."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE bench_raw (phone text, name text, city text, amount text)"))
        started = time.perf_counter()
        with engine.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with (
                cursor.copy("COPY bench_raw FROM STDIN (FORMAT csv, HEADER true)") as copy,
                path.open("rb") as f,
            ):
                while data := f.read(1 << 20):
                    copy.write(data)
        return time.perf_counter() - started
    finally:
        engine.dispose()


def _valid_lead(i: int) -> BatchRow:
    """Lead ``i`` as the import hands it to the writer: (row, copies, E.164, variables JSON, admission)."""
    return (i + 2, 1, f"+1212{2_000_000 + i:07d}", f'{{"name":"Lead {i}","city":"Pune","amount":"{i}.00"}}', 0)


def write_alone(url: str, settings: Settings, leads: int) -> float:
    """The import's database write alone: ``leads`` valid, distinct leads through :class:`ImportWriter`."""
    engine = make_engine(url)
    try:
        create_campaign(engine, settings, "bench-write", "sim-callkaro", TimingFields(timezone="callee"), NOW)
        with engine.connect() as conn:
            campaign = campaign_store.by_name(conn, "bench-write")
        assert campaign is not None
        numbered = Admissions(campaign.timing, NOW, settings).get((), {}, "{}", ("America/New_York",), "+12125550000")
        admission = admission_row(numbered)
        started = time.perf_counter()
        writer = ImportWriter(engine, campaign, NOW)
        try:
            for start in range(0, leads, CHUNK_ROWS):
                rows = range(start, min(start + CHUNK_ROWS, leads))
                writer.put(Batch([_valid_lead(i) for i in rows], [admission] if start == 0 else []))
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        assert writer.accepted == leads, (writer.accepted, leads)
        return time.perf_counter() - started
    finally:
        engine.dispose()


def run(rows: int, *, with_write_alone: bool = False) -> dict[str, float | int | str]:
    workers = worker_count()
    with tempfile.TemporaryDirectory(prefix="outdial-bench-") as tmp, fresh_database() as url:
        leads = Path(tmp) / "leads.csv"
        write_leads(leads, rows)
        upgrade(url)
        engine = make_engine(url)
        settings = Settings(database_url=url, data_dir=Path(tmp) / "var")
        create_campaign(engine, settings, "bench", "sim-callkaro", TimingFields(timezone="callee"), NOW)
        with PeakMemory() as memory:
            started = time.perf_counter()
            summary = import_csv(engine, settings, "bench", leads, now=NOW)
            import_s = time.perf_counter() - started
        engine.dispose()
        phonenumbers_s = floor_phonenumbers(leads, workers)
        copy_s = floor_copy(url, leads)
        write_s = write_alone(url, settings, summary.accepted) if with_write_alone else None
        file_mb = leads.stat().st_size / 1e6
    floor_s = phonenumbers_s + copy_s
    print(f"{'rows':<34}{rows:>14,}")
    print(f"{'file size (MB)':<34}{file_mb:>14.1f}")
    print(f"{'worker processes':<34}{workers:>14}")
    print(f"{'accepted / rejected':<34}{summary.accepted:>7,} / {summary.rejected:,}")
    print(f"{'duplicates / suppressed':<34}{summary.duplicates:>7,} / {summary.suppressed:,}")
    print(f"{'import (s)':<34}{import_s:>14.2f}")
    print(f"{'floor: phonenumbers parse+format':<34}{phonenumbers_s:>14.2f}")
    print(f"{'floor: raw COPY of the file':<34}{copy_s:>14.2f}")
    print(f"{'floor (s)':<34}{floor_s:>14.2f}")
    print(f"{'import / floor':<34}{import_s / floor_s:>14.2f}")
    print(f"{'peak RSS, importer + workers (MB)':<34}{memory.peak / 1e6:>14.1f}")
    figures: dict[str, float | int | str] = {
        "import_rows_per_s": round(rows / import_s),
        "import_seconds": round(import_s, 3),
        "floor_seconds": round(floor_s, 3),
        "import_floor_ratio": round(import_s / floor_s, 3),
        "peak_rss_mb": round(memory.peak / 1e6, 1),
        "rows": rows,
        "import_write_path": str(summary.write_path),  # foreign-key checks on or off (lead_import.WritePath)
    }
    if write_s is not None:
        print(f"{'write alone (s), accepted leads':<34}{write_s:>14.2f}")
        print(f"{'import / write alone':<34}{import_s / write_s:>14.2f}")
        figures["write_alone_seconds"] = round(write_s, 3)
        figures["import_write_ratio"] = round(import_s / write_s, 3)
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench import", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated file (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="50,000 rows, for a quick look")
    parser.add_argument(
        "--write-alone",
        action="store_true",
        help="also time the import's database write alone (the accepted leads, already valid, through ImportWriter)",
    )
    args = parser.parse_args(argv)
    rows = 50_000 if args.quick else args.rows
    result = run(rows, with_write_alone=args.write_alone)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0
