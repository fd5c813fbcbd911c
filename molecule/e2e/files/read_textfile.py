"""Reads a Prometheus textfile from stdin with prometheus_client's own text parser (the parser Prometheus'
Python client ships) and prints its families as JSON: {name: {"type": TYPE, "samples": [[labels, value]]}}.
+Inf is printed as the string "+Inf"."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

families = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = {
        "type": family.type,
        "samples": [[sample.labels, "+Inf" if math.isinf(sample.value) else sample.value]
                    for sample in family.samples],
    }
print(json.dumps(families))
