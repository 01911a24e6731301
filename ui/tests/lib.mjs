// What every browser scenario file shares: Chromium (Debian's, headless, through
// playwright-core), logging in, screenshots, the axe-core check, and the runner. A scenario file
// (ui/tests/*.mjs) defines { name: async (page) => ... } and ends with
// `await runScenarios(scenarios)`; it is run as `node ui/tests/FILE.mjs SCENARIO ...` by a
// Python e2e test that starts the server and its peers and passes what the scenarios need in
// the environment (PB_URL, PB_ADMIN_PASSWORD and PB_SCREENSHOTS, a folder, optional, for all).
// Exit 0 when every scenario named held.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
export const env = process.env;
export const url = env.PB_URL;
export const shots = env.PB_SCREENSHOTS || "";
export const TIMEOUT = 15000;

export async function browser() {
  return chromium.launch({
    executablePath: env.PB_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // As root in a container Chromium's sandbox cannot start; the page is our own.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

export async function shot(page, name) {
  if (!shots) return;
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: false });
}

export async function logIn(page, user, password) {
  await page.goto(url + "/", { waitUntil: "load" });
  await page.getByLabel("User name", { exact: true }).fill(user);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
}

// axe-core, from npm, injected into the page: no serious or critical violation.
export async function accessible(page, what) {
  // Evaluated through the DevTools protocol: the page's own policy forbids inline scripts, and
  // that stays on.
  await page.evaluate(readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    [],
    `accessibility of ${what}`,
  );
}

// Chromium logs every refused request as a console error; 400, 401, 403 and 429 are the UI's
// everyday answers. A scenario that provokes another refusal on purpose names it here (its status
// and, optionally, a part of the API path), and only that one passes.
const refusals = new WeakMap();
export function expectRefusal(page, status, apiPath = "") {
  refusals.set(page, [...(refusals.get(page) ?? []), { status, apiPath }]);
}
function expected(page, m) {
  return (refusals.get(page) ?? []).some(
    (r) => m.text().includes(`status of ${r.status}`) && m.location().url.includes(r.apiPath),
  );
}

// Runs the scenarios named on the command line, each in a fresh browser context; a page error or
// an unexpected console error fails the scenario.
export async function runScenarios(scenarios) {
  const names = process.argv.slice(2);
  let failed = 0;
  const b = await browser();
  try {
    for (const name of names) {
      const scenario = scenarios[name];
      if (!scenario) throw new Error(`no scenario ${name}`);
      const context = await b.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      const problems = [];
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      page.on("console", (m) => {
        if (m.type() === "error" && !/401|429|400|403/.test(m.text()) && !expected(page, m)) {
          problems.push(`console: ${m.text()}`);
        }
      });
      try {
        await scenario(page);
        assert.deepEqual(problems, [], "the page logged errors");
        console.log(`ok    ${name}`);
      } catch (e) {
        failed++;
        console.log(`FAIL  ${name}: ${e.stack || e}`);
        if (shots) await page.screenshot({ path: path.join(shots, `failed-${name}.png`) }).catch(() => {});
      } finally {
        await context.close();
      }
    }
  } finally {
    await b.close();
  }
  process.exitCode = failed ? 1 : 0;
}
