"""Fuzz campaign of issue 12: malformed inputs through the carkinetics command line.

    python benchmarks/fuzz/campaign.py --jobs 2 --out benchmarks/fuzz/results

Generates about 650 seeded cases (``fuzzgen.py``: mutations of the shipped model, scenario,
sweep, calibration, parameter-set and data files, output destinations, ~150 attempts to get
code past the expression whitelist, and the findings of issue 12 written by hand), runs each
as ``python -m carkinetics ...`` in a subprocess in a fresh folder, and classifies it:

============== ===========================================================================
code_exec      the payload's sentinel file (``PWNED``) exists after the run
traceback      stderr contains ``Traceback``
hang           still running after the time limit (60 s; 240 s for cases that may compile
               a new numba kernel, which takes 30-100 s on a loaded 2-core machine)
memory         peak RSS over 1 GiB, or an allocation failing under the 1 GiB address-space limit
               (MemoryError, "LLVM ERROR: out of memory", "failed to map segment", ...)
crash          killed by a signal (segfault, abort)
wrong_result   the Jacobian-collision model's trajectory differs from the same model under other names
wrongly_acc    exit 0 on an input that must be refused
unnamed        refused, but the message does not start with ``Error:`` or does not name the file
refused_valid  refused an input that is valid by construction
ok_refused     exit != 0, ``Error: ...`` naming the file
accepted       exit 0 on a valid or maybe-valid input
============== ===========================================================================

Limits per case: peak RSS 1 GiB, summed over the case's process group (the run's figure helper
is a child) and polled from /proc every 50 ms (over it: killed, `memory`); RLIMIT_AS = 2 GiB as
a backstop (numba and LLVM reserve much more address space than they touch: with RLIMIT_AS =
1 GiB a fresh compile of an expression like ``10 ** 10 ** 10`` aborts with "LLVM ERROR: out of
memory" at 800 MB RSS, while it runs at that RSS without the limit); wall-clock timeout.

Writes OUT/results.csv (one row per case), OUT/summary.json, and benchmarks/fuzz/results.md
(the table per category and every failing case). Cases run in parallel (--jobs, 2 at most
on the 2-core machines of this project).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fuzzgen  # noqa: E402

LIMIT_BYTES = 1 << 30
TIMEOUT = 60.0
TIMEOUT_COMPILE = 240.0
OUTCOMES = ["ok_refused", "accepted", "unnamed", "refused_valid", "wrongly_accepted", "wrong_result", "traceback",
            "hang", "memory", "crash", "code_exec"]
FAILURES = ["code_exec", "traceback", "hang", "memory", "crash", "wrongly_accepted", "wrong_result", "unnamed",
            "refused_valid"]


_RUNNING: set = set()  # process groups of the cases running now (ended if the campaign is stopped)


def _stop_running():
    for pgid in list(_RUNNING):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


AS_LIMIT = [2 * LIMIT_BYTES]  # RLIMIT_AS backstop of the cases (--as-limit; 0: none); the bar is peak RSS
MEMORY_SIGNS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "LLVM ERROR: out of memory",
                "failed to map segment", "Buffer allocation failed")


def _limit():
    if AS_LIMIT[0]:
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT[0], AS_LIMIT[0]))
    os.setsid()


def _group_rss(pgid: int) -> int:
    """Resident memory (bytes) of every process of a process group."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5: pgrp
                continue
            total += int(fields[21]) * 4096  # field 24: rss in pages
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_case(case: fuzzgen.Case, work: Path, kcache: Path) -> dict:
    folder = work / case.id
    if folder.exists():
        _rmtree(folder)
    fuzzgen.materialise(case, folder)
    args = fuzzgen.argv_for(case, folder)
    if args[0] == "@probe":
        argv = [sys.executable, str(HERE / "probe.py")] + args[1:]
    else:
        argv = [sys.executable, "-m", "carkinetics"] + args
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1", NUMBA_NUM_THREADS="2")
    if case.compiles:
        env["CARKINETICS_CACHE_DIR"] = str(kcache)
    timeout = case.timeout or (TIMEOUT_COMPILE if case.compiles else TIMEOUT)
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=_limit)
    except (ValueError, OSError) as err:  # e.g. a NUL byte in an argument: never reaches carkinetics
        return _row(case, "not_run", None, 0.0, 0, "", f"could not start: {err}", folder)
    _RUNNING.add(proc.pid)
    out_chunks, err_chunks = [], []
    import threading

    def pump(stream, sink):
        while True:
            b = stream.read(65536)
            if not b:
                break
            if sum(map(len, sink)) < 2_000_000:
                sink.append(b)

    threads = [threading.Thread(target=pump, args=(proc.stdout, out_chunks), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err_chunks), daemon=True)]
    for t in threads:
        t.start()
    peak = 0
    killed = None
    while proc.poll() is None:
        rss = _group_rss(proc.pid)
        peak = max(peak, rss)
        elapsed = time.monotonic() - t0
        if rss > LIMIT_BYTES:
            killed = "memory"
        elif elapsed > timeout:
            killed = "hang"
        if killed:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            break
        time.sleep(0.05)
    # stray children of the case (its process group) are ended too
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _RUNNING.discard(proc.pid)
    for t in threads:
        t.join(timeout=5)
    wall = time.monotonic() - t0
    stdout = b"".join(out_chunks).decode("utf-8", "replace")
    stderr = b"".join(err_chunks).decode("utf-8", "replace")
    rc = proc.returncode
    sentinel = any(p.name == fuzzgen.SENTINEL for p in folder.rglob(fuzzgen.SENTINEL)) or \
        (Path.cwd() / fuzzgen.SENTINEL).exists()
    if sentinel:
        outcome = "code_exec"
    elif killed == "hang":
        outcome = "hang"
    elif killed == "memory" or any(sign in stderr for sign in MEMORY_SIGNS):
        outcome = "memory"
    elif "Traceback" in stderr:
        outcome = "traceback"
    elif rc is not None and rc < 0:
        outcome = "crash"
    elif rc == 0:
        outcome = "wrongly_accepted" if case.expect == "refuse" else "accepted"
    else:
        names = case.names.replace("{d}", str(folder))
        named = not names or names in stderr or _escaped(names) in stderr
        starts = stderr.lstrip().startswith("Error:") or (stderr.lstrip().startswith("Usage:") and
                                                          "\nError:" in stderr)
        if not (named and starts):
            outcome = "unnamed"
        elif case.expect == "accept":
            outcome = "refused_valid"
        else:
            outcome = "ok_refused"
    return _row(case, outcome, rc, wall, peak, stdout, stderr, folder)


def _escaped(text: str) -> str:
    return ascii(text)[1:-1]


def _row(case, outcome, rc, wall, peak, stdout, stderr, folder):
    first = next((ln for ln in stderr.splitlines() if ln.strip()), "")
    last = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    return {"id": case.id, "category": case.category, "hand": case.hand, "expect": case.expect,
            "mutation": case.mutation, "outcome": outcome, "exit": rc, "seconds": round(wall, 2),
            "peak_rss_mb": round(peak / 2**20, 1), "description": case.desc,
            "command": "carkinetics " + " ".join(_shell(a) for a in case.argv),
            "stderr_first": first[:300], "stderr_last": last[:300], "folder": str(folder)}


def _shell(a: str) -> str:
    import shlex

    s = shlex.quote(a)
    return s if len(s) < 200 else s[:120] + f"...<{len(s):,} chars>"


def _rmtree(p: Path):
    for root, dirs, _ in os.walk(p):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o755)
            except OSError:
                pass
    shutil.rmtree(p, ignore_errors=True)


def summarise(rows, out: Path, md: Path, elapsed: float, seed: int):
    cats = []
    for r in rows:
        if r["category"] not in cats:
            cats.append(r["category"])
    table = {c: {o: 0 for o in OUTCOMES + ["not_run"]} for c in cats}
    for r in rows:
        table[r["category"]][r["outcome"]] += 1
    cols = [o for o in OUTCOMES + ["not_run"] if any(table[c][o] for c in cats) or o in FAILURES[:6]]
    lines = ["# Fuzz campaign results (issue 12)", "",
             f"`python benchmarks/fuzz/campaign.py --jobs 2 --out {out}` (seed {seed}): {len(rows)} cases in "
             f"{elapsed / 60:.1f} min, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"tree at `{_git_head()}` plus uncommitted work.", "",
             "| category | cases | " + " | ".join(cols) + " |",
             "|---|---:|" + "---:|" * len(cols)]
    for c in cats:
        n = sum(table[c].values())
        lines.append(f"| {c} | {n} | " + " | ".join(str(table[c][o]) for o in cols) + " |")
    tot = {o: sum(table[c][o] for c in cats) for o in cols}
    lines.append(f"| **all** | **{len(rows)}** | " + " | ".join(f"**{tot[o]}**" for o in cols) + " |")
    lines += ["", "Outcomes: see the docstring of `campaign.py`. Bar of issue 12: 0 code_exec, 0 traceback, 0 hang, "
              "0 memory, 0 crash, 0 wrongly_accepted; unnamed (an error not naming the file) and refused_valid "
              "are reported too.", ""]
    bad = [r for r in rows if r["outcome"] in FAILURES]
    if bad:
        lines += ["## Failing cases", "", "| id | outcome | description | first/last stderr line |",
                  "|---|---|---|---|"]
        for r in sorted(bad, key=lambda r: (FAILURES.index(r["outcome"]), r["id"])):
            msg = r["stderr_last"] if r["outcome"] == "traceback" else r["stderr_first"]
            lines.append(f"| {r['id']} | {r['outcome']} | {_md(r['description'])} | {_md(msg[:160])} |")
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps({"cases": len(rows), "seconds": elapsed, "table": table},
                                                 indent=1), encoding="utf-8")
    return table


def _md(s: str) -> str:
    return ascii(s)[1:-1].replace("|", "\\|").replace("`", "'")


def _git_head():
    try:
        return subprocess.run(["git", "-C", str(fuzzgen.ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except Exception:
        return "?"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the number of random mutations")
    ap.add_argument("--only", default=None, help="comma-separated categories or case-id prefixes")
    ap.add_argument("--work", type=Path, default=None, help="folder for the case folders (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the case folders")
    ap.add_argument("--md", type=Path, default=None, help="markdown summary (default: benchmarks/fuzz/results.md, "
                                                          "or OUT/results.md with --only)")
    ap.add_argument("--update", action="store_true",
                    help="with --only: replace those cases' rows in OUT/results.csv and redraw results.md")
    ap.add_argument("--as-limit", type=float, default=2.0,
                    help="address-space limit per case in GiB, a backstop (0: none); the bar is peak RSS <= 1 GiB")
    args = ap.parse_args(argv)
    AS_LIMIT[0] = int(args.as_limit * 2**30)
    jobs = max(1, min(args.jobs, 2))
    cases = fuzzgen.generate(args.seed, args.scale)
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        cases = [c for c in cases if c.category in keys or any(c.id.startswith(k) for k in keys)]
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="carkinetics_fuzz_"))
    work.mkdir(parents=True, exist_ok=True)
    kcache = work / "_kernels"
    md = args.md or (args.out / "results.md" if args.only and not args.update else HERE / "results.md")
    print(f"{len(cases)} cases, {jobs} workers, case folders in {work}", flush=True)
    # slow cases (fresh compiles, end-to-end runs) first, so that they overlap the quick ones
    order = sorted(cases, key=lambda c: (not c.compiles, c.parse_only))
    t0 = time.monotonic()
    rows = []

    def _term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    try:
        _run_all(order, cases, jobs, work, kcache, rows, t0, args.keep)
    except KeyboardInterrupt:
        _stop_running()
        print("interrupted: running cases ended", file=sys.stderr)
        os._exit(130)
    elapsed = time.monotonic() - t0
    return _finish(rows, cases, args, md, elapsed, work, kcache)


def _run_all(order, cases, jobs, work, kcache, rows, t0, keep):
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        _collect(pool, order, cases, work, kcache, rows, t0, keep)
    finally:  # on an interrupt: cancel the cases not started, end the running ones
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_running()


def _collect(pool, order, cases, work, kcache, rows, t0, keep):
    if True:
        futs = {pool.submit(run_case, c, work, kcache): c for c in order}
        for k, f in enumerate(as_completed(futs), 1):
            c = futs[f]
            try:
                r = f.result()
            except Exception as err:  # a bug of the campaign itself: keep going, record it
                r = _row(c, "not_run", None, 0.0, 0, "", f"campaign error: {err!r}", work / c.id)
            rows.append(r)
            flag = "" if r["outcome"] in ("ok_refused", "accepted") else "   <--"
            print(f"[{k:4d}/{len(cases)} {time.monotonic() - t0:6.0f}s] {r['id']:36s} {r['outcome']:16s} "
                  f"{r['seconds']:6.1f}s {r['peak_rss_mb']:7.0f}MB{flag}", flush=True)
            if not keep and r["outcome"] in ("ok_refused", "accepted") and c.id not in _PAIRS and \
                    c.id not in _PAIRS.values():
                _rmtree(work / c.id)


# (case, reference): the same model under other names; their trajectories must agree (Jacobian locals)
_PAIRS = {"model-h-jacobian-collision": "model-h-jacobian-collision-ref"}


def _compare_pairs(rows, work):
    import numpy as np
    import pandas as pd

    by_id = {r["id"]: r for r in rows}
    for a, b in _PAIRS.items():
        if a not in by_id or b not in by_id or by_id[a]["outcome"] != "accepted" or \
                by_id[b]["outcome"] != "accepted":
            continue
        try:
            ta = pd.read_csv(work / a / "out" / "trajectory.csv")
            tb = pd.read_csv(work / b / "out" / "trajectory.csv")
            x, y = ta.select_dtypes("number").to_numpy(), tb.select_dtypes("number").to_numpy()
            same = x.shape == y.shape and np.allclose(x, y, rtol=1e-6, atol=1e-12)
        except Exception as err:
            same, by_id[a]["stderr_last"] = False, f"comparison failed: {err!r}"
        if not same:
            by_id[a]["outcome"] = "wrong_result"
            by_id[a]["stderr_first"] = f"trajectory differs from {b} (same model, other names)"
        if not getattr(_compare_pairs, "keep", False):
            _rmtree(work / a)
            _rmtree(work / b)


def _finish(rows, cases, args, md, elapsed, work, kcache):
    _compare_pairs(rows, work)
    if args.update and (args.out / "results.csv").exists():
        new_ids = {r["id"] for r in rows}
        with open(args.out / "results.csv", newline="", encoding="utf-8") as fh:
            old = [r for r in csv.DictReader(fh) if r["id"] not in new_ids]
        for r in old:
            r["hand"] = r["hand"] == "True"
            r["_new"] = False  # already escaped when written
        prev = json.loads((args.out / "summary.json").read_text(encoding="utf-8")).get("seconds", 0.0) \
            if (args.out / "summary.json").exists() else 0.0
        rows = old + rows
        elapsed = prev + elapsed
        cases = fuzzgen.generate(args.seed, args.scale)
    order_ids = {c.id: i for i, c in enumerate(cases)}
    rows.sort(key=lambda r: order_ids.get(r["id"], len(order_ids)))
    with open(args.out / "results.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if k != "_new"])
        w.writeheader()
        for r in rows:
            w.writerow({k: (_md(v) if isinstance(v, str) and r.get("_new", True) else v) for k, v in r.items()
                        if k != "_new"})
    table = summarise(rows, args.out, md, elapsed, args.seed)
    print(md.read_text(encoding="utf-8").split("## Failing")[0])
    if not args.keep:
        _rmtree(kcache)
        print(f"failing case folders kept in {work}")
    fails = sum(table[c][o] for c in table for o in FAILURES)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
