"""Run every command of the README as written, in this checkout (a CI step of .ci/run).

Commands are the lines of the README's fenced ``bash`` blocks that start with ``carkinetics``
(trailing ``# comments`` removed), and the ``carkinetics`` part of the quick start's
``python -m pip install . && carkinetics ...`` (the package is installed already). A line
shown as a transcript (``$ carkinetics ...`` in a plain fenced block, followed by its output)
must fail as shown: the same exit status (1 for a refused file) and the same first line of
output. Every other command must exit 0. Prints one line per command with its time; exits 1
if any command did not behave as written.

    python ci/readme_commands.py [--readme README.md] [--list]
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands(text: str) -> list[tuple[str, str | None]]:
    """``(command, expected first output line or None)`` for every README command, in order."""
    found = []
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)
    for lang, body in blocks:
        lines = body.splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            if lang == "bash":
                if "&& carkinetics " in stripped:
                    stripped = "carkinetics " + stripped.split("&& carkinetics ", 1)[1]
                if stripped.startswith("carkinetics "):
                    found.append((_without_comment(stripped), None))
            elif stripped.startswith("$ carkinetics "):
                expected = lines[i + 1].strip() if i + 1 < len(lines) else ""
                found.append((stripped[2:], expected))
    return found


def _without_comment(line: str) -> str:
    parts = shlex.split(line, comments=True)
    return shlex.join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--list", action="store_true", help="only list the commands")
    args = parser.parse_args(argv)
    found = commands(Path(args.readme).read_text(encoding="utf-8"))
    failed = 0
    for command, expected in found:
        if args.list:
            print(command)
            continue
        start = time.perf_counter()
        run = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        output = (run.stdout + run.stderr).strip().splitlines()
        if expected is None:
            ok = run.returncode == 0
            why = "" if ok else f"exit {run.returncode}: {' | '.join(output[-5:])}"
        else:
            ok = run.returncode != 0 and bool(output) and output[0].strip() == expected
            why = "" if ok else f"exit {run.returncode}, first line {output[:1]!r}, README shows {expected!r}"
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {seconds:7.1f} s  {command}" + (f"\n      {why}" if why else ""),
              flush=True)
    if not args.list:
        print(f"{len(found) - failed} of {len(found)} README commands behave as written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
