#!/usr/bin/env python3
"""Second opinion on the gateway's /metrics text: parses it with the Prometheus project's own
Python client (`prometheus_client`), which raises on text it does not accept, and prints what
it read as JSON, for the Rust test to compare with its own reading.

  parse_metrics.py prometheus|openmetrics < TEXT

Output: {"families": {"<name>": "<type>"}, "samples": [["<name>", {labels}, value], ...]}
`prometheus` is the text format 0.0.4; `openmetrics` is OpenMetrics 1.0, parsed strictly
(e.g. it must end with `# EOF`, and counters' samples must carry `_total`).
"""
import json
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families


def main():
    kind = sys.argv[1]
    text = sys.stdin.read()
    parse = {"prometheus": text_families, "openmetrics": openmetrics_families}[kind]
    families = {}
    samples = []
    for family in parse(text):
        if family.name in families:
            raise SystemExit(f"family {family.name} appears twice")
        families[family.name] = family.type
        for s in family.samples:
            samples.append([s.name, s.labels, s.value])
    json.dump({"families": families, "samples": samples}, sys.stdout)


if __name__ == "__main__":
    main()
