#!/usr/bin/env python3
"""Check an Autobahn|Testsuite fuzzingclient report against tests/autobahn/expected.json.

Reads target/autobahn/reports/index.json (written by scripts/autobahn.sh),
prints the counts per behavior and per case group, and checks every case:

  * its `behavior` must be OK or INFORMATIONAL (NON-STRICT, UNIMPLEMENTED,
    FAILED, WRONG CODE, UNCLEAN, ... fail);
  * its `behaviorClose` must be OK or INFORMATIONAL;
  * if the case is in the expected file, both must equal the expected values;
  * every expected case that the run was asked for (per the fuzzingclient spec
    beside the reports, if there is one) must be in the report.

The expected file must exist, unless --write-expected is given: that
(re)writes it from the current report, keeping only cases whose behavior and
behaviorClose are both OK/INFORMATIONAL. Entries for cases outside the
patterns of this run are kept as they were.

The last line printed is always `autobahn: N passed, M failed`; the exit
status is 0 only when M is 0. Standard library only.
"""

import argparse
import json
import os
import re
import sys
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REPORT = os.path.join(ROOT, "target", "autobahn", "reports", "index.json")
DEFAULT_EXPECTED = os.path.join(ROOT, "tests", "autobahn", "expected.json")
ALLOWED = ("OK", "INFORMATIONAL")
# Order of columns in the tables; other values seen are appended.
KNOWN_BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED",
                   "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT"]


def case_key(case_id):
    """Sort key for case ids like '9.1.10'."""
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def pattern_matches(pattern, case_id):
    """Match a case id the way wstest resolves spec patterns."""
    if "*" in pattern:
        return re.match(pattern.replace(".", r"\.").replace("*", ".*"), case_id) is not None
    return pattern == case_id


def load_spec_patterns(path):
    """(cases, exclude-cases) from the fuzzingclient spec, or None if absent."""
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        spec = json.load(f)
    return spec.get("cases", ["*"]), spec.get("exclude-cases", [])


def in_run(case_id, patterns):
    if patterns is None:
        return True
    cases, excluded = patterns
    return (any(pattern_matches(p, case_id) for p in cases)
            and not any(pattern_matches(p, case_id) for p in excluded))


def print_table(title, header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    print(title)
    line = "  ".join(str(h).ljust(w) if i == 0 else str(h).rjust(w)
                     for i, (h, w) in enumerate(zip(header, widths)))
    print("  " + line)
    print("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        print("  " + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))))
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report", default=DEFAULT_REPORT, help="index.json of the run (default: %(default)s)")
    ap.add_argument("--expected", default=DEFAULT_EXPECTED, help="expected results (default: %(default)s)")
    ap.add_argument("--spec", default=None,
                    help="fuzzingclient spec of the run (default: fuzzingclient.json next to the reports dir)")
    ap.add_argument("--agent", default=None, help="agent name in the report (default: the only one, or 'myriad')")
    ap.add_argument("--write-expected", action="store_true",
                    help="regenerate the expected file from this report")
    ap.add_argument("--max-failures", type=int, default=100, help="failed cases listed in detail")
    args = ap.parse_args(argv)

    # --- load the report ------------------------------------------------------
    if not os.path.exists(args.report):
        print("autobahn: report %s not found (did wstest run?)" % args.report)
        print("autobahn: 0 passed, 1 failed")
        return 1
    with open(args.report) as f:
        index = json.load(f)
    if not index:
        print("autobahn: report %s holds no agent" % args.report)
        print("autobahn: 0 passed, 1 failed")
        return 1
    agent = args.agent or ("myriad" if "myriad" in index or len(index) != 1 else next(iter(index)))
    if agent not in index:
        print("autobahn: agent %r not in report (agents: %s)" % (agent, ", ".join(sorted(index))))
        print("autobahn: 0 passed, 1 failed")
        return 1
    results = index[agent]
    report_dir = os.path.dirname(os.path.abspath(args.report))
    spec_path = args.spec or os.path.join(os.path.dirname(report_dir), "fuzzingclient.json")
    patterns = load_spec_patterns(spec_path)

    # --- expected -------------------------------------------------------------
    expected = None
    if os.path.exists(args.expected):
        with open(args.expected) as f:
            expected = json.load(f)
    if args.write_expected:
        new = {}
        if expected:
            # keep what this run did not cover
            new = {c: v for c, v in expected.items() if not in_run(c, patterns)}
        kept = 0
        for c, r in results.items():
            if r.get("behavior") in ALLOWED and r.get("behaviorClose") in ALLOWED:
                new[c] = {"behavior": r["behavior"], "behaviorClose": r["behaviorClose"]}
                kept += 1
        os.makedirs(os.path.dirname(os.path.abspath(args.expected)), exist_ok=True)
        with open(args.expected, "w") as f:
            # one case per line, in case order: small, readable diffs
            lines = ["  %s: %s" % (json.dumps(c), json.dumps(new[c], sort_keys=True))
                     for c in sorted(new, key=case_key)]
            f.write("{\n" + ",\n".join(lines) + "\n}\n")
        print("autobahn: wrote %s: %d cases (%d from this run, %d of the run's cases left out as not OK/INFORMATIONAL)"
              % (os.path.relpath(args.expected), len(new), kept, len(results) - kept))
        expected = new
    elif expected is None:
        print("autobahn: expected file %s is missing; generate it from a run of the real server with"
              % os.path.relpath(args.expected))
        print("autobahn:   scripts/autobahn.sh && python3 scripts/autobahn_check.py --write-expected")

    # --- tables ---------------------------------------------------------------
    behaviors = Counter(r.get("behavior", "?") for r in results.values())
    closes = Counter(r.get("behaviorClose", "?") for r in results.values())
    seen = [b for b in KNOWN_BEHAVIORS if b in behaviors or b in closes]
    seen += sorted((set(behaviors) | set(closes)) - set(seen))
    print_table("Autobahn results for agent %r: %d cases" % (agent, len(results)),
                ["result", "behavior", "behaviorClose"],
                [[b, behaviors.get(b, 0), closes.get(b, 0)] for b in seen])

    by_group = defaultdict(Counter)
    for c, r in results.items():
        by_group[c.split(".")[0]][r.get("behavior", "?")] += 1
    cols = [b for b in KNOWN_BEHAVIORS if b in behaviors] + sorted(set(behaviors) - set(KNOWN_BEHAVIORS))
    rows = [[g, sum(by_group[g].values())] + [by_group[g].get(b, 0) for b in cols]
            for g in sorted(by_group, key=case_key)]
    print_table("behavior per case group", ["group", "cases"] + cols, rows)

    # --- check ----------------------------------------------------------------
    failures = []  # (case, reason)
    passed = 0
    for c in sorted(results, key=case_key):
        r = results[c]
        b, bc = r.get("behavior"), r.get("behaviorClose")
        reasons = []
        if b not in ALLOWED:
            reasons.append("behavior %s" % b)
        if bc not in ALLOWED:
            reasons.append("behaviorClose %s" % bc)
        if expected is not None and c in expected:
            e = expected[c]
            if (e.get("behavior"), e.get("behaviorClose")) != (b, bc):
                reasons.append("expected %s/%s, got %s/%s" % (e.get("behavior"), e.get("behaviorClose"), b, bc))
        if reasons:
            detail = r.get("reportfile")
            if detail:
                reasons.append("see %s" % os.path.relpath(os.path.join(report_dir, detail)))
            failures.append((c, "; ".join(reasons)))
        else:
            passed += 1
    if expected is not None:
        for c in sorted(expected, key=case_key):
            if c not in results and in_run(c, patterns):
                failures.append((c, "missing from the report (expected %s/%s)"
                                 % (expected[c].get("behavior"), expected[c].get("behaviorClose"))))

    if failures:
        print("failed cases:")
        for c, why in failures[:args.max_failures]:
            print("  %-10s %s" % (c, why))
        if len(failures) > args.max_failures:
            print("  ... and %d more" % (len(failures) - args.max_failures))
        print()
    failed = len(failures)
    if expected is None:
        failed += 1  # the missing expected file itself
        print("autobahn: FAILED: no expected file (counted as one failure)")
    print("autobahn: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
