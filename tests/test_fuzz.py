"""Fuzz test of issue 12 (item 8): a few hundred seeded malformed inputs, in-process.

The cases are those of the fuzz campaign (``benchmarks/fuzz/fuzzgen.py``: mutations of the
shipped model, scenario, sweep, calibration, parameter-set and data files, expression
whitelist escapes, and the findings of issue 12), minus the ones that need a simulation:
everything here stops before the engine, so no numba compilation and the whole file runs in
well under a minute. Each case asserts:

* no exception other than a :class:`carkinetics.CarKineticsError` (no traceback);
* an error message names the input file;
* an input that must be refused is refused (no wrongly accepted input);
* a time budget per case (no hang; SIGALRM interrupts a case that overruns it);
* no code execution: the payloads create a sentinel file, and when a model carrying a payload
  is accepted, the kernel source generated from it is scanned for the payload outside
  comments (the source is generated, never imported or compiled here).

The full campaign (every case through the command line in a subprocess, with 60 s and 1 GiB
limits, runs and sweeps included) is ``python benchmarks/fuzz/campaign.py --jobs 2``.
"""

from __future__ import annotations

import io
import random
import signal
import sys
import threading
import time
import tokenize
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks" / "fuzz"))
import fuzzgen  # noqa: E402

from carkinetics.cli.main import main  # noqa: E402
from carkinetics.errors import CarKineticsError  # noqa: E402

SEED = 20261205
BUDGET_S = 10.0  # per case; parse-only cases take milliseconds to a second


def _cases():
    rng = random.Random(SEED)
    cases = []
    cases += fuzzgen.model_cases(rng, 60) + fuzzgen.hand_model_cases()
    cases += fuzzgen.scenario_cases(rng, 50) + fuzzgen.hand_scenario_cases()
    cases += fuzzgen.sweep_cases(rng, 30) + fuzzgen.hand_sweep_cases()
    cases += fuzzgen.calibration_cases(rng, 8) + fuzzgen.hand_calibration_cases()
    cases += fuzzgen.parameter_set_cases(rng, 15)
    cases += fuzzgen.data_cases(rng, 30) + fuzzgen.hand_data_cases()
    cases += fuzzgen.escape_cases()
    out = []
    for c in cases:
        if c.argv[0] == "run" and c.payload:
            # model-carrying payloads: loaded and code-generated in-process, never simulated
            out.append(c)
        elif c.argv[0] in ("check", "@probe") or (c.argv[0] == "calibrate" and "--dry-run" in c.argv):
            out.append(c)
        elif c.argv[0] == "fit":
            out.append(c)  # loaded as `fit` loads it, without fitting
    # left to the campaign: tables of 200,000 rows or 100,000 columns (bounded, but 10-30 s to load on
    # a loaded machine) and files of tens of megabytes
    return [c for c in out if c.mutation != "huge_rows" and c.id != "data-h-100k-columns"
            and sum(len(b) for b in c.files.values() if isinstance(b, bytes)) < 8_000_000]


CASES = _cases()


class _Overrun(Exception):
    pass


def _alarm(signum, frame):
    raise _Overrun(f"case overran its budget of {BUDGET_S:g} s")


def _payload_in_kernel(model) -> list[str]:
    """Tokens of the generated kernel source (outside comments) that carry a payload."""
    from carkinetics.model.codegen import generate_source

    src = generate_source(model)
    bad = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            continue
        if fuzzgen.SENTINEL in tok.string or tok.string in ("system", "__import__", "exec", "eval", "os"):
            bad.append(f"line {tok.start[0]}: {tok.line.strip()[:120]}")
    return bad


def _invoke(case, folder: Path):
    """Run one case in-process; return (refused, message, model-or-None)."""
    args = fuzzgen.argv_for(case, folder)
    kind = args[0]
    if kind == "check" or kind == "calibrate":
        result = CliRunner().invoke(main, args, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        model = None
        if result.exit_code == 0 and case.payload and kind == "check":
            import tomllib

            path = Path(args[1])
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
            if "scenario" in data:
                from carkinetics.scenario.load import load_scenario

                model = load_scenario(path).model
            else:
                from carkinetics import load_model

                model = load_model(path)
        return result.exit_code != 0, result.output, model
    if kind == "run":  # payload cases: load the scenario (and its model) as `run` does, then generate the kernel
        from carkinetics.scenario.load import load_scenario

        try:
            sc = load_scenario(args[1])
        except CarKineticsError as err:
            return True, f"Error: {err}", None
        return False, "", sc.model
    if kind in ("@probe", "fit"):
        from carkinetics import load_model
        from carkinetics.scenario.data import load_data

        model_path, data_path = (args[2], args[3]) if kind == "@probe" else (args[1], args[2])
        try:
            load_data(data_path, load_model(model_path))
        except CarKineticsError as err:
            return True, f"Error: {err}", None
        return False, "", None
    raise AssertionError(f"unexpected command {args}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fuzz_case(case, tmp_path, monkeypatch):
    folder = tmp_path / "case"
    fuzzgen.materialise(case, folder)
    monkeypatch.chdir(folder)  # payloads write the sentinel into the current folder
    monkeypatch.setenv("CARKINETICS_CACHE_DIR", str(tmp_path / "kernels"))
    # the per-case budget is a SIGALRM, which only the main thread may install (some
    # pytest-xdist/execnet combinations run tests in another thread: then the budget is
    # checked after the case instead of interrupting it)
    alarm = threading.current_thread() is threading.main_thread()
    if alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, BUDGET_S)
    t0 = time.perf_counter()
    try:
        refused, message, model = _invoke(case, folder)
    except _Overrun:
        pytest.fail(f"{case.id}: hang (over {BUDGET_S:g} s): {case.desc}")
    except RecursionError as err:
        pytest.fail(f"{case.id}: traceback RecursionError {err}: {case.desc}")
    except MemoryError:
        pytest.fail(f"{case.id}: MemoryError: {case.desc}")
    except CarKineticsError as err:  # raised outside the CLI's handler: still an input error
        refused, message, model = True, f"Error: {err}", None
    except Exception as err:
        pytest.fail(f"{case.id}: traceback {type(err).__name__}: {str(err)[:300]}: {case.desc}")
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    elapsed = time.perf_counter() - t0
    assert not list(folder.rglob(fuzzgen.SENTINEL)), f"{case.id}: CODE EXECUTION: {case.desc}"
    if model is not None:
        injected = _payload_in_kernel(model)
        assert not injected, f"{case.id}: payload reaches the generated kernel: {injected[:3]}: {case.desc}"
    if refused:
        assert "Error" in message, f"{case.id}: refused without an error message: {message[:300]!r}"
        if case.names:
            assert case.names in message or ascii(case.names)[1:-1] in message, (
                f"{case.id}: the error does not name {case.names!r}: {message[:300]!r}")
        assert case.expect != "accept", f"{case.id}: a valid input was refused: {message[:300]!r}"
    else:
        assert case.expect != "refuse", f"{case.id}: wrongly accepted: {case.desc}"
    assert elapsed < BUDGET_S, f"{case.id}: took {elapsed:.1f} s"


def test_fuzz_cases_are_seeded_and_many():
    """The in-suite set is deterministic and a few hundred strong."""
    assert 300 <= len(CASES) <= 800
    again = [c.id for c in _cases()]
    assert again == [c.id for c in CASES]
