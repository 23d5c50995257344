"""Judge an Autobahn TestSuite report for channels' interface server.

    python conformance_check.py REPORTS/AGENT/index.json

Every case must pass, except 9.x cases (messages of 1 to 16 MB) that exceed
the server's message limit: for those the right behaviour is to close with
1009 (message too big), which the suite still marks FAILED. Exit 1 if any
other case FAILED.
"""

import json
import sys
from collections import Counter


def main(path: str) -> int:
    with open(path) as report:
        (cases,) = json.load(report).values()
    counts = Counter(case["behavior"] for case in cases.values())
    over_limit, failed = [], []
    for case_id, case in sorted(cases.items()):
        if case["behavior"] not in ("FAILED", "NO_CLOSE"):
            continue
        if case_id.startswith("9.") and case.get("remoteCloseCode") == 1009:
            over_limit.append(case_id)
        else:
            failed.append(f"{case_id} ({case['behavior']}, close {case.get('remoteCloseCode')})")
    print(f"conformance: {len(cases)} cases: "
          + ", ".join(f"{name}={count}" for name, count in sorted(counts.items())))
    print(f"conformance: {len(over_limit)} 9.x cases over the message limit closed with 1009")
    if failed:
        print("conformance: FAILED: " + ", ".join(failed))
        return 1
    print("conformance: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
