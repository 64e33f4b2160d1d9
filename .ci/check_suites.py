"""Fail unless every required suite ran tests in every report, and nothing was skipped."""

import sys
import xml.etree.ElementTree as ET

REQUIRED = [
    "tests.test_records",
    "tests.test_collections",
    "tests.test_concurrency",
    "tests.test_coalesce",
    "tests.test_embedded",
    "tests.test_dump",
    "tests.test_typescript",
    "tests.test_auth",
    "tests.test_deploy",
    "tests.test_docs_browser",
    "tests.test_console_browser",
    "tests.test_instances",
    "tests.test_observability",
    "tests.test_shutdown",
    "tests.test_faults",
    "tests.test_hostile",
    "tests.test_schemathesis",
    "tests.test_bench_smoke",
    "tests.test_fast_path",
    "tests.test_leases",
    "tests.test_wheel",
    "tests.test_packaging",
    "tests.test_npm_pack",
    "tests.test_readme",
    "tests.test_route_auth",
    "tests.test_contract",
    "tests.test_history",
    "tests.test_watch",
    "tests.test_ha",
    "client.python.tests",
]


def main(paths: list[str]) -> int:
    failed = False
    for path in paths:
        cases = ET.parse(path).getroot().iter("testcase")
        ran: dict[str, int] = {}
        skipped = []
        for case in cases:
            name = case.get("classname", "")
            if case.find("skipped") is not None:
                skipped.append(f"{name}::{case.get('name')}")
            ran[name] = ran.get(name, 0) + 1
        for suite in REQUIRED:
            count = sum(n for name, n in ran.items() if name.startswith(suite))
            print(f"{path}: {suite}: {count} tests")
            if count == 0:
                print(f"{path}: required suite {suite} did not run")
                failed = True
        if skipped:
            print(f"{path}: {len(skipped)} skipped tests (none may be skipped):")
            print("\n".join(f"  {s}" for s in skipped))
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
