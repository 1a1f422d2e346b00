"""Conformance counts per engine through the gateway's engine seam, and where they differ.

    .venv/bin/python contrib/bench/cel_conformance.py [--diff]

Runs tests/data/cel_conformance/cases.json (1,415 cel-spec cases) through
``get_engine(name).compile(...).evaluate(...)`` exactly as rules run; see
``tests/cel/conformance.py`` for how cases are adapted. A report, not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.cel.conformance import agree, load_cases, passed, run  # noqa: E402

try:
    from wsgi_gateway.cel import get_engine  # noqa: E402
except ImportError:
    from wsgi_gateway.policy.engine import get_engine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--diff", action="store_true", help="list the cases the engines disagree on")
    args = parser.parse_args()
    cases = load_cases()
    outcomes = {name: [run(get_engine(name), case) for case in cases] for name in ("cel-python", "cel-cpp")}
    for name, results in outcomes.items():
        print(f"{name}: {sum(passed(o, c) for o, c in zip(results, cases)):,} of {len(cases):,} pass")
    differ = [(c, a, b) for c, a, b in zip(cases, *outcomes.values()) if not agree(a, b)]
    print(f"engines disagree on {len(differ)} cases")
    if args.diff:
        for case, a, b in differ:
            print(f"{case['id']}\t{case['expr']!r}\n    cel-python: {a!r}\n    cel-cpp:    {b!r}")


if __name__ == "__main__":
    main()
