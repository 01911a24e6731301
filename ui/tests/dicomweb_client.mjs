#!/usr/bin/env node
// DICOMweb calls made by an independent client, the npm package dicomweb-client (what OHIF
// uses; a devDependency of ui/, run `npm ci` there first), in Node with xhr2 as its
// XMLHttpRequest, for tests/e2e/test_dicomweb_client_npm.py.
//
//   node ui/tests/dicomweb_client.mjs JOB.json     (or the job in $PB_DICOMWEB_JOB, as JSON)
//
// JOB: {"url": "http://host:port/dicom-web", "credentials": [user, password] | null,
//       "calls": [{"id": "name", "method": "searchForStudies" | ..., "options": {...},
//                  "credentials": [user, password] | null (optional: this call's own)}]}
// Each call is `new api.DICOMwebClient({url, headers: {Authorization: "Basic ..."}})
// [method](options)`, with the library's own methods only; in options, "datasetFiles":
// [paths] becomes "datasets": [ArrayBuffer of each file's bytes] (storeInstances). Calls run
// one after the other.
//
// Prints one JSON object on stdout:
//   {"library": {"name", "version" (its package.json), "build_version" (what the library says),
//                "xhr2": version},
//    "results": {id: {"ok": true, "value": <summary>, "requests": [...]}
//                  | {"ok": false, "error": message, "status": the error's status, "requests"}}}
// A summary: JSON answers as they are ({"json": ...}); a string answer {"text", "json" when it
// parses}; an ArrayBuffer or typed array {"size", "base64", "content_type", "transfer_syntax"
// (what the library attached from the headers)}; an array of those {"parts": [...]}.
// "requests": each HTTP request the library made (recorded by a request hook): {"method",
// "url", "accept", "content_type", "authorization" (whether one was sent: never its value),
// "status", "response_content_type"}.
// Exit 0 when the job ran (failed calls are results, for the test to judge), 2 otherwise.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

// stdout is this script's answer alone: library logging goes to stderr.
console.log = console.info = console.debug = console.warn = console.error;

const uiRequire = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), "../package.json"));
// dicomweb-client calls `new XMLHttpRequest()` as a browser global: xhr2 plays it in Node.
globalThis.XMLHttpRequest = uiRequire("xhr2");
const dicomweb = await import(uiRequire.resolve("dicomweb-client"));
const { api } = dicomweb.default ?? dicomweb;

function versionOf(name) {
  return JSON.parse(fs.readFileSync(uiRequire.resolve(`${name}/package.json`), "utf8")).version;
}

function readJob() {
  const arg = process.argv[2];
  if (arg) return JSON.parse(fs.readFileSync(arg === "-" ? 0 : arg, "utf8"));
  if (process.env.PB_DICOMWEB_JOB) return JSON.parse(process.env.PB_DICOMWEB_JOB);
  throw new Error("usage: node dicomweb_client.mjs JOB.json (or $PB_DICOMWEB_JOB)");
}

function authHeaders(credentials) {
  if (!credentials) return {};
  const [user, password] = credentials;
  return { Authorization: "Basic " + Buffer.from(`${user}:${password}`, "utf8").toString("base64") };
}

function header(headers, name) {
  for (const [k, v] of Object.entries(headers || {})) {
    if (k.toLowerCase() === name) return v;
  }
  return null;
}

function summarizeBytes(value) {
  const bytes = ArrayBuffer.isView(value)
    ? Buffer.from(value.buffer, value.byteOffset, value.byteLength)
    : Buffer.from(value);
  return {
    size: bytes.length,
    base64: bytes.toString("base64"),
    content_type: value.contentType ?? null,
    transfer_syntax: value.transferSyntaxUID ?? null,
  };
}

function summarize(value) {
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return summarizeBytes(value);
  if (Array.isArray(value) && value.length && value.every((v) => v instanceof ArrayBuffer || ArrayBuffer.isView(v))) {
    return { parts: value.map(summarizeBytes) };
  }
  if (typeof value === "string") {
    try {
      return { text: value, json: JSON.parse(value) };
    } catch {
      return { text: value };
    }
  }
  return { json: value ?? null };
}

async function runCall(job, call) {
  const requests = [];
  const hook = (request, metadata) => {
    const entry = {
      method: metadata.method.toUpperCase(),
      url: metadata.url,
      accept: header(metadata.headers, "accept"),
      content_type: header(metadata.headers, "content-type"),
      authorization: header(metadata.headers, "authorization") !== null,
    };
    requests.push({ entry, request });
    return request;
  };
  const credentials = "credentials" in call ? call.credentials : job.credentials;
  const client = new api.DICOMwebClient({
    url: job.url,
    headers: authHeaders(credentials),
    requestHooks: [hook],
    verbose: false,
  });
  const options = { ...(call.options || {}) };
  if (options.datasetFiles) {
    options.datasets = options.datasetFiles.map((f) => {
      const b = fs.readFileSync(f);
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    });
    delete options.datasetFiles;
  }
  const done = () =>
    requests.map(({ entry, request }) => ({
      ...entry,
      status: request.status,
      response_content_type: request.getResponseHeader("Content-Type"),
    }));
  try {
    const value = await client[call.method](options);
    return { ok: true, value: summarize(value), requests: done() };
  } catch (e) {
    return { ok: false, error: String(e && e.message), status: e && e.status !== undefined ? e.status : null, requests: done() };
  }
}

try {
  const job = readJob();
  const out = {
    library: {
      name: "dicomweb-client",
      version: versionOf("dicomweb-client"),
      build_version: dicomweb.version ?? dicomweb.default?.version ?? null,
      xhr2: versionOf("xhr2"),
    },
    results: {},
  };
  for (const call of job.calls) {
    out.results[call.id] = await runCall(job, call);
  }
  process.stdout.write(JSON.stringify(out) + "\n");
} catch (e) {
  process.stderr.write(String((e && e.stack) || e) + "\n");
  process.exit(2);
}
