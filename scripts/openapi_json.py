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


def pieces(value):
    """C++ raw string literals of value, one per piece: an array of them, joined at run time,
    since compilers limit one literal's length (adjacent literals would make one)."""
    delim = "pb"
    while (")%s\"" % delim) in value:
        delim += "x"
    parts = [value[i:i + 8000] for i in range(0, len(value), 8000)] or [""]
    return ",\n".join('R"%s(%s)%s"' % (delim, p, delim) for p in parts)


with open(out, "w", encoding="utf-8") as f:
    f.write("// Generated from %s by scripts/openapi_json.py: do not edit.\n" % src.split("/")[-1])
    f.write("#include <string>\n\n")
    f.write("namespace pb::http {\n")
    f.write("namespace {\n")
    f.write("const char* const kYamlParts[] = {\n%s};\n" % pieces(text))
    f.write("const char* const kJsonParts[] = {\n%s};\n" % pieces(as_json))
    f.write("template <class Parts>\nstd::string Join(const Parts& parts) {\n"
            "  std::string out;\n  for (const char* p : parts) out += p;\n  return out;\n}\n")
    f.write("}  // namespace\n")
    f.write("const std::string& OpenApiYaml() {\n  static const std::string text = Join(kYamlParts);\n"
            "  return text;\n}\n")
    f.write("const std::string& OpenApiJson() {\n  static const std::string text = Join(kJsonParts);\n"
            "  return text;\n}\n")
    f.write("}  // namespace pb::http\n")
