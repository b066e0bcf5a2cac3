"""symnet against numpy, JAX, folx, PyTorch, CasADi and SymPy: value and derivatives at N points.

Run:  make bench                                   (the full benchmark: minutes per net)
      .venv/bin/python benchmarks/run.py --quick   (N / 100, 3 repeats: a smoke test)
      .venv/bin/python benchmarks/run.py --nets T1,T3 --suite hessian --out /tmp/results.md

Each net (``nets.py``) gets a floor row (the time the machine needs for the forward-mode FLOPs
or for moving inputs and results, whichever is larger, from the matmul GFLOP/s and copy
bandwidth measured at start-up), then one row per comparator (``comparators.py``): set-up
seconds, median evaluation seconds after one warm-up call (the comparators of a net take turns,
one call each per round), points/s, time relative to symnet,
and the largest absolute difference from symnet's exact kernel (from the numpy baseline while
``symnet.compile`` does not exist).  A net's rows are printed when its comparators are done,
and the Markdown table is rewritten to ``--out`` after each row (between the ``BEGIN`` and ``END``
marker lines when the file has them, so text written around the table stays).

Threads: ``machine.configure_threads`` sets OMP/OpenBLAS/MKL/numba thread counts and XLA's
``intra_op_parallelism_threads`` to the core count before numpy, JAX or PyTorch is imported
(values already in the environment win); PyTorch gets ``torch.set_num_threads``, CasADi maps
on that many threads.  symnet's compile cache is a fresh temporary ``SYMNET_CACHE_DIR``.
"""

from __future__ import annotations

import machine

THREADS = machine.configure_threads()  # before numpy, JAX and PyTorch are imported

import argparse  # noqa: E402
import datetime  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from comparators import COMPARATORS, Comparator, Derivs, Evaluate, Settings, Unavailable  # noqa: E402
from nets import NETS, SUITES, RefNet  # noqa: E402

DEFAULT_OUT = Path(__file__).with_name("RESULTS.md")
#: Where the table goes in a file that has more than the table (RESULTS.md keeps the notes and the
#: design measurements written around it): only the text between these lines is rewritten.
BEGIN = "<!-- benchmarks/run.py writes from here -->"
END = "<!-- benchmarks/run.py writes up to here -->"
MATMUL_WIDTHS = (32, 64, 128, 256)  # the layer widths of the reference nets, rounded up
HEADER = ("net", "comparator", "set-up s", "eval s", "points/s", "time / symnet", "time / floor", "max abs err",
          "notes")


@dataclass(frozen=True)
class Limits:
    """The machine's measured limits: float64 matmul GFLOP/s by layer width, copy GB/s."""

    gflops: dict[int, float]
    bandwidth: float

    @staticmethod
    def width(net: RefNet) -> int:
        """The measured matmul width that stands for ``net``: the first at least its widest layer."""
        return next((w for w in MATMUL_WIDTHS if w >= max(net.sizes)), MATMUL_WIDTHS[-1])


@dataclass
class Measured:
    """One comparator's numbers on one net (``None`` where it did not run)."""

    setup_s: float | None = None
    eval_s: float | None = None
    result: Derivs | None = None


class Report:
    """The Markdown table: printed row by row, and rewritten to ``path`` after every row."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path, self.lines = path, header + ["", "| " + " | ".join(HEADER) + " |",
                                                "|" + "---|" * len(HEADER)]
        print("\n".join(self.lines), flush=True)
        self._write()

    def row(self, *cells: str) -> None:
        line = "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
        self.lines.append(line)
        print(line, flush=True)
        self._write()

    def footnote(self, text: str) -> None:
        self.lines += ["", text]
        print("\n" + text, flush=True)
        self._write()

    def _write(self) -> None:
        """The table, between :data:`BEGIN` and :data:`END` when the file has them (the text around
        them, written by hand, is kept); otherwise the whole file."""
        table = "\n".join(self.lines) + "\n"
        before = after = ""
        if self.path.exists():
            text = self.path.read_text()
            if BEGIN in text and END in text.split(BEGIN, 1)[1]:
                before, rest = text.split(BEGIN, 1)
                before, after = before + BEGIN + "\n", END + rest.split(END, 1)[1]
        self.path.write_text(before + table + after)


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


@dataclass
class Entry:
    """One comparator being timed on one net: its prepared evaluation, or why it has none."""

    comparator: Comparator
    prepared: Any = None
    points: np.ndarray | None = None
    scale_up: float = 1.0
    result: Derivs | None = None
    repeats: int = 0
    times: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failure: str = ""


def prepare(comparator: Comparator, net: RefNet, points: np.ndarray, settings: Settings, repeats: int,
            row_budget_s: float, slow_s: float = 0.0) -> Entry:
    """Set up one comparator and make its warm-up call; a failure becomes the entry's note, never an exception.

    Fewer timed calls (at least one) are planned when ``repeats`` would not fit in ``row_budget_s``.
    """
    entry = Entry(comparator)
    try:
        if slow_s and comparator is not COMPARATORS[0]:
            points, entry.scale_up, note_subset = subset_for(comparator, net, points, settings, slow_s)
            entry.notes.append(note_subset)
        entry.prepared = comparator.prepare(net, points, settings)
        entry.points = points
        start = time.perf_counter()
        entry.result = entry.prepared.evaluate(points)
        warm_up = time.perf_counter() - start
        entry.repeats = max(1, min(repeats, int(row_budget_s / max(warm_up, 1e-9))))
    except Unavailable as why:
        entry.failure = str(why)
    except Exception as exc:  # a comparator's bug or limit must not stop the others
        entry.failure = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    return entry


def time_in_turns(entries: list[Entry]) -> None:
    """Timed calls, the comparators taking turns: one call each per round, so that each row's
    median is taken over the same minutes as the others' (this machine's speed swings 1.3-1.7x
    from minute to minute; timing one comparator after another put them in different states)."""
    for round_ in range(max((e.repeats for e in entries if not e.failure), default=0)):
        for entry in entries:
            if entry.failure or round_ >= entry.repeats:
                continue
            try:
                start = time.perf_counter()
                entry.prepared.evaluate(entry.points)
                entry.times.append(time.perf_counter() - start)
            except Exception as exc:  # noqa: BLE001 -- as in prepare
                entry.failure = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"


def measured(entry: Entry, repeats: int) -> tuple[Measured, str]:
    """The row's numbers and note."""
    if entry.failure:
        return Measured(), entry.failure
    done = len(entry.times)
    note = f"median of {done}, in turns with the other rows" + (" (slow: fewer repeats)" if done < repeats else "")
    eval_s = statistics.median(entry.times) * entry.scale_up
    return (Measured(entry.prepared.setup_s, eval_s, entry.result),
            "; ".join(filter(None, [note, *entry.notes, entry.prepared.note])))


def floor_row(net: RefNet, n: int, limits: Limits, report: Report) -> float:
    """Report and return the floor: the FLOP or the memory time of ``n`` points, whichever is larger."""
    width = limits.width(net)
    flop_s = n * net.flops_per_point() / (limits.gflops[width] * 1e9)
    memory_s = n * net.bytes_per_point() / (limits.bandwidth * 1e9)
    floor = max(flop_s, memory_s)
    report.row(f"**{net.name}** {net.title}, {net.task}, N={n:,}", "floor: max(FLOP, memory)", "—",
               seconds(floor), f"{n / floor:.3g}", "", "1", "",
               f"{net.flops_per_point():,} FLOP/pt at {limits.gflops[width]:.1f} GFLOP/s (w={width}): "
               f"{flop_s:.3g} s; {net.bytes_per_point()} B/pt at {limits.bandwidth:.1f} GB/s: {memory_s:.3g} s")
    return floor


def subset_for(comparator: Comparator, net: RefNet, points: np.ndarray, settings: Settings,
               slow_s: float) -> tuple[np.ndarray, float, str]:
    """Points to time a slow comparator on: all of them, or a leading subset when one call on all
    would take longer than ``slow_s`` (judged from a call on 1% of them).  Cost is linear in N
    for every comparator here, so the subset's time is scaled by N / subset; the note says so."""
    n = len(points)
    probe = points[: max(1, n // 100)]
    prepared = comparator.prepare(net, probe, settings)
    prepared.evaluate(probe)
    start = time.perf_counter()
    prepared.evaluate(probe)
    projected = (time.perf_counter() - start) * n / len(probe)
    if projected <= slow_s:
        return points, 1.0, ""
    m = max(len(probe), int(n * slow_s / projected))
    return points[:m], n / m, f"timed on the first {m:,} points and scaled by {n / m:.3g} (one call on all would take ~{projected:.0f} s)"


ONLY: list[str] = []  # set from --comparators


def wanted(comparator: Comparator) -> bool:
    return comparator is COMPARATORS[0] or not ONLY or any(w in comparator.label.lower() for w in ONLY)


def run_net(net: RefNet, n: int, settings: Settings, limits: Limits, report: Report, repeats: int,
            row_budget_s: float, slow_s: float = 0.0) -> None:
    """The floor row and one row per comparator that runs ``net.task``, timed in turns."""
    points = net.points(n)
    floor = floor_row(net, n, limits, report)
    entries = []
    for comparator in COMPARATORS:
        if net.task in comparator.tasks and wanted(comparator):
            print(f"{net.name}: setting up {comparator.label}", flush=True)
            entries.append(prepare(comparator, net, points, settings, repeats, row_budget_s, slow_s))
    print(f"{net.name}: timing {sum(not e.failure for e in entries)} comparators in turns", flush=True)
    time_in_turns(entries)
    reference: Derivs | None = None
    symnet_s: float | None = None
    for entry in entries:
        row, note = measured(entry, repeats)
        if entry.comparator is COMPARATORS[0] and row.eval_s is not None:  # symnet
            symnet_s = row.eval_s
        if row.result is None:
            error = "—"
        elif reference is None:
            reference, error = row.result, "reference"
        else:
            error = f"{row.result.max_abs_error(reference.head(len(row.result.value))):.1e}"
        ratio = "" if row.eval_s is None or symnet_s is None else f"{row.eval_s / symnet_s:.3g}"
        to_floor = "" if row.eval_s is None else f"{row.eval_s / floor:.3g}"
        report.row(net.name, entry.comparator.label, seconds(row.setup_s), seconds(row.eval_s),
                   "—" if row.eval_s is None else f"{n / row.eval_s:.3g}", ratio, to_floor, error, note)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N / 100 and 3 repeats: a smoke test")
    parser.add_argument("--nets", help="comma-separated net names (default: every net of --suite)")
    parser.add_argument("--comparators", help="comma-separated words; only comparators whose label contains "
                        "one of them (case-insensitive) run, symnet always (default: all)")
    parser.add_argument("--suite", choices=(*SUITES, "all"), default="all",
                        help="hessian (T1-T6), laplacian (L1-L3) or all (default)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"Markdown file (default {DEFAULT_OUT.name})")
    parser.add_argument("--repeats", type=int, help="timed calls per row (default 5, --quick 3)")
    parser.add_argument("--row-budget", type=float, default=600.0,
                        help="seconds of timed calls per row before fewer repeats are made (default 600)")
    parser.add_argument("--slow", type=float, default=20.0,
                        help="a comparator whose one call on all N points would take longer than this many "
                             "seconds is timed on a subset and scaled (default 20; 0 turns it off)")
    parser.add_argument("--sympy-budget", type=float,
                        help="seconds plain SymPy may take to differentiate (default 600, --quick 60)")
    parser.add_argument("--compile-budget", type=float,
                        help="seconds a fresh-process symnet.compile may take (default 900, --quick 120)")
    args = parser.parse_args(argv)
    if args.nets:
        unknown = sorted(set(args.nets.split(",")) - NETS.keys())
        if unknown:
            parser.error(f"unknown nets {unknown}; choose from {', '.join(NETS)}")
    return args


def selected(args: argparse.Namespace) -> list[RefNet]:
    names = args.nets.split(",") if args.nets else list(NETS)
    return [NETS[name] for name in names if args.suite in ("all", NETS[name].task)]


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    nets = selected(args)
    if args.comparators:
        ONLY.extend(w.strip().lower() for w in args.comparators.split(","))
    repeats = args.repeats or (3 if args.quick else 5)
    scale = 100 if args.quick else 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` removes the cache
    cache = tempfile.mkdtemp(prefix="symnet-bench-cache-")
    os.environ["SYMNET_CACHE_DIR"] = cache  # the symnet compile probes start from an empty cache
    try:
        limits = Limits({w: machine.matmul_gflops(w) for w in MATMUL_WIDTHS}, machine.memory_bandwidth())
        floor = machine.numba_cache_floor()
        header = [
            "# symnet benchmark: value and derivatives of dense nets at N points",
            "",
            ("**QUICK SMOKE RUN (`--quick`: N / 100, few repeats): not benchmark figures.**\n"
             if args.quick else ""),
            f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"- command: `{shlex.join([os.path.relpath(sys.executable), *sys.argv])}`",
            *machine.describe(limits.gflops, limits.bandwidth, THREADS),
            "- numba's own floor under a disk-cache hit, fresh interpreter (median of 3): import numba "
            f"{floor[0]:.3f} s + first call of a trivial cached @njit function {floor[1]:.3f} s",
            "- eval s: median of the timed calls after one warm-up call, the comparators of a net taking turns (one call each per round), numpy arrays in and out; "
            "set-up s: what happens once per net and batch shape (compile, trace, differentiate)",
            "- time / symnet: this row's eval time over symnet's (above 1: slower than symnet); "
            "time / floor: over the floor row's (FLOP/pt over matmul GFLOP/s at the net's width, or "
            "bytes/pt over copy bandwidth, whichever is larger); "
            "max abs err: over value, gradient and Hessian (or Laplacian), against the `reference` row",
        ]
        report = Report(args.out, [line for line in header if line])
        settings = Settings(sympy_budget_s=args.sympy_budget or (60.0 if args.quick else 600.0),
                            compile_budget_s=args.compile_budget or (120.0 if args.quick else 900.0),
                            threads=machine.cores())
        for net in nets:
            run_net(net, net.n_points // scale, settings, limits, report, repeats, args.row_budget, args.slow)
        report.footnote(f"Written by `benchmarks/run.py` to {args.out.name}.")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
