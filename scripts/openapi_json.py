#!/usr/bin/env python3
"""Writes the C++ source that embeds docs/openapi.yaml (argv[1]) twice: as it is, served at
/api/openapi.yaml, and as compact JSON, served at /api/openapi.json and read by the server to
check its routes. Output: argv[2]. Run by CMake at configure time; needs PyYAML (Debian:
python3-yaml)."""
import json
import sys

import yaml

src, out = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8") as f:
    text = f.read()
doc = yaml.safe_load(text)
if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
    sys.exit("%s: not an OpenAPI document with paths" % src)
as_json = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def literal(value):
    """A C++ raw string literal of value, with a delimiter that does not occur in it; long
    values are cut into adjacent literals (compilers limit one literal's length)."""
    delim = "pb"
    while (")%s\"" % delim) in value:
        delim += "x"
    pieces = [value[i:i + 8000] for i in range(0, len(value), 8000)] or [""]
    return "\n".join('R"%s(%s)%s"' % (delim, p, delim) for p in pieces)


with open(out, "w", encoding="utf-8") as f:
    f.write("// Generated from %s by scripts/openapi_json.py: do not edit.\n" % src.split("/")[-1])
    f.write("namespace pb::http {\n")
    f.write("extern const char* const kOpenApiYaml =\n%s;\n" % literal(text))
    f.write("extern const char* const kOpenApiJson =\n%s;\n" % literal(as_json))
    f.write("}  // namespace pb::http\n")
