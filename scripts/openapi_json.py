#!/usr/bin/env python3
"""Prints docs/openapi.yaml (argv[1]) as compact JSON, for the server to embed and serve as
/api/openapi.json. Run by CMake at configure time; needs PyYAML (Debian: python3-yaml)."""
import json
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as f:
    doc = yaml.safe_load(f)
if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
    sys.exit("%s: not an OpenAPI document with paths" % sys.argv[1])
sys.stdout.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
