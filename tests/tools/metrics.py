#!/usr/bin/env python3
"""Parses a Prometheus text exposition (stdin) with prometheus_client's own parser, the one a
Python scraper uses, and prints every sample as one JSON object per line:
{"name": ..., "labels": {...}, "value": ...}. A page the parser refuses exits non-zero."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps({"name": s.name, "labels": s.labels, "value": s.value}))
