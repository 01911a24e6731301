// Browser scenarios of the web UI's first pages: log-in, PACS connections, a read-only account,
// the archive. Run by tests/e2e/test_ui.py, which starts the server and its peers and passes, in
// the environment (besides lib.mjs's): PB_READER / PB_READER_PASSWORD (a read-only account),
// PB_ORTHANC_AET / PB_ORTHANC_PORT, PB_INVALID_AE / PB_INVALID_AE_MESSAGE (an AE title the API
// refuses and the API's own words for it), PB_SERIES (a series of the archive) and its labels
// PB_PROJECT / PB_SUBJECT / PB_SESSION, PB_STAGED_ID (a staged session of two instances).
// Usage: node ui/tests/scenarios.mjs SCENARIO ... ; exit 0 when every scenario held.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { accessible, env, logIn, runScenarios, shot, TIMEOUT } from "./lib.mjs";

const scenarios = {
  // A wrong password is refused with the API's words; the right one opens the connections page.
  async login(page) {
    await logIn(page, "admin", "not-the-password");
    await page.getByRole("alert").filter({ hasText: "wrong user name or password" }).waitFor({ timeout: TIMEOUT });
    await shot(page, "login");
    await page.getByLabel("Password", { exact: true }).fill(env.PB_ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "PACS connections" }).waitFor({ timeout: TIMEOUT });
    // The session survives a reload (the cookie), and log-out ends it.
    await page.reload();
    await page.getByRole("heading", { name: "PACS connections" }).waitFor({ timeout: TIMEOUT });
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("button", { name: "Log in" }).waitFor({ timeout: TIMEOUT });
  },

  // Add a node: an invalid AE title gets the API's message beside the field, live; a valid one
  // is saved; test connection against Orthanc; every field and the dialog pass axe-core.
  async nodes(page) {
    await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Add node" }).click();
    const dialog = page.getByRole("dialog", { name: "Add node" });
    await dialog.waitFor({ timeout: TIMEOUT });
    await dialog.getByLabel("Name", { exact: true }).fill("orthanc-ui");
    await dialog.getByLabel("Host", { exact: true }).fill("127.0.0.1");
    await dialog.getByLabel("Port", { exact: true }).fill(env.PB_ORTHANC_PORT);
    await dialog.getByLabel("AE title", { exact: true }).fill(env.PB_INVALID_AE);
    const fieldError = page.locator("#node-ae_title-error");
    await fieldError.waitFor({ timeout: TIMEOUT });
    // The live check runs as each field changes: the message for the empty AE title (after the
    // port was typed) may show first; wait for the one about the title typed last.
    await page
      .waitForFunction(
        ([sel, want]) => document.querySelector(sel)?.textContent.trim() === want,
        ["#node-ae_title-error", env.PB_INVALID_AE_MESSAGE],
        { timeout: TIMEOUT },
      )
      .catch(() => {});
    assert.equal((await fieldError.textContent()).trim(), env.PB_INVALID_AE_MESSAGE);
    // Beside the field it is about, and tied to it for screen readers.
    assert.equal(await dialog.getByLabel("AE title", { exact: true }).getAttribute("aria-invalid"), "true");
    assert.match(await dialog.getByLabel("AE title", { exact: true }).getAttribute("aria-describedby"), /node-ae_title-error/);
    await shot(page, "add-node-invalid");
    await accessible(page, "the add-node dialog");
    await dialog.getByLabel("AE title", { exact: true }).fill(env.PB_ORTHANC_AET);
    await fieldError.waitFor({ state: "detached", timeout: TIMEOUT });
    await dialog.getByLabel("Queryable", { exact: true }).check();
    await dialog.getByRole("button", { name: "Add node" }).click();
    await dialog.waitFor({ state: "detached", timeout: TIMEOUT });
    const row = page.locator('tr[data-node="orthanc-ui"]');
    await row.waitFor({ timeout: TIMEOUT });
    assert.match(await row.textContent(), new RegExp(`127\\.0\\.0\\.1:${env.PB_ORTHANC_PORT}`));
    await row.getByRole("button", { name: "Test connection" }).click();
    const result = page.getByRole("status").filter({ hasText: "Connection established" });
    await result.waitFor({ timeout: 30000 });
    // Each check with its outcome: the echo and the query both pass against Orthanc.
    for (const check of ["echo", "find"]) {
      const cells = await result.locator(`tr[data-check="${check}"] td`).allTextContents();
      assert.equal(cells[1], "ok", `${check}: ${cells.join(" | ")}`);
      assert.ok(cells[2].length > 0, `${check} has no detail`);
    }
    await page.locator('tr[data-node="orthanc-ui"] td.last-test .ok').waitFor({ timeout: TIMEOUT });
    // The C-MOVE self-test: this Orthanc holds nothing, so it cannot tell, and says so with
    // what the PACS must list (the API's words, checked by the Python side too).
    await row.getByRole("button", { name: "Does the PACS know us?" }).click();
    const moved = page.locator('[data-move-check="orthanc-ui"]');
    await moved.waitFor({ timeout: 30000 });
    assert.match(await moved.textContent(), /holds no instance to move/);
    await shot(page, "connections");
    await accessible(page, "the connections page");
    await row.getByRole("button", { name: "History" }).click();
    const history = page.getByRole("dialog", { name: "Connection tests of orthanc-ui" });
    await history.getByRole("cell", { name: "ok", exact: true }).first().waitFor({ timeout: TIMEOUT });
    await page.keyboard.press("Escape");
    await history.waitFor({ state: "detached", timeout: TIMEOUT });
    // The keyboard reaches the page's controls.
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement?.tagName);
    assert.ok(["A", "BUTTON"].includes(focused), `Tab focuses a control, not ${focused}`);
  },

  // A read-only account sees the nodes but no way to change them.
  async reader(page) {
    await logIn(page, env.PB_READER, env.PB_READER_PASSWORD);
    await page.getByRole("heading", { name: "PACS connections" }).waitFor({ timeout: TIMEOUT });
    await page.locator('tr[data-node="orthanc-ui"]').waitFor({ timeout: TIMEOUT });
    assert.equal(await page.getByRole("button", { name: "Add node" }).count(), 0);
    assert.equal(await page.getByRole("button", { name: "Edit" }).count(), 0);
    assert.equal(await page.getByRole("button", { name: "Delete" }).count(), 0);
    assert.equal(await page.getByRole("button", { name: "Test connection" }).count(), 0);
    await page.getByRole("link", { name: "Jobs" }).click();
    await page.getByRole("heading", { name: "Jobs" }).waitFor({ timeout: TIMEOUT });
    await shot(page, "jobs");
  },
};

// The archive: by project, the labels lead down to the series; by study, a study opens to its
// series, each with the server's thumbnail of its middle image and a ZIP download.
scenarios.archive = async (page) => {
  await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
  await page.getByRole("link", { name: "Archive" }).click();
  await page.getByRole("heading", { name: "Archive" }).waitFor({ timeout: TIMEOUT });
  // Projects → subjects → sessions → series (the labels routing gave the received study).
  for (const label of [env.PB_PROJECT, env.PB_SUBJECT, env.PB_SESSION]) {
    await page.locator(`tr[data-label="${label}"]`).getByRole("button", { name: label }).click();
  }
  await page.locator(`li[data-series="${env.PB_SERIES}"]`).waitFor({ timeout: TIMEOUT });
  await page.getByRole("navigation", { name: "Where in the archive" }).getByRole("button", { name: "All projects" }).click();
  await page.locator(`tr[data-label="${env.PB_PROJECT}"]`).waitFor({ timeout: TIMEOUT });
  await page.getByRole("button", { name: "By study" }).click();
  await page.getByRole("button", { name: "THUMB^NAIL" }).click();
  const card = page.locator(`li[data-series="${env.PB_SERIES}"]`);
  await card.waitFor({ timeout: TIMEOUT });
  assert.match(await card.textContent(), /3 instance\(s\)/);
  const img = card.getByRole("img");
  await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle(), { timeout: TIMEOUT });
  const natural = await img.evaluate((el) => [el.naturalWidth, el.naturalHeight]);
  assert.equal(Math.max(...natural), 128, `thumbnail ${natural}`);
  // The ZIP link downloads the series (the browser's own download, with the session cookie).
  const [download] = await Promise.all([page.waitForEvent("download"), card.getByRole("link", { name: /as ZIP/ }).click()]);
  assert.equal(download.suggestedFilename(), `series-${env.PB_SERIES}.zip`);
  const file = await download.path();
  const bytes = readFileSync(file);
  assert.equal(bytes.subarray(0, 4).toString("binary"), "PK\x03\x04", "a ZIP local file header");
  await shot(page, "archive");
  await accessible(page, "the archive page");
};

// The staging area: a session a staging receiver holds back is archived from the page.
scenarios.staging = async (page) => {
  await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
  await page.getByRole("link", { name: "Archive" }).click();
  await page.getByRole("button", { name: "Staging" }).click();
  const row = page.locator(`tr[data-staged="${env.PB_STAGED_ID}"]`);
  await row.waitFor({ timeout: TIMEOUT });
  assert.match(await row.textContent(), /2 \(/);
  await shot(page, "staging");
  await accessible(page, "the staging view");
  await row.getByRole("button", { name: "Archive now" }).click();
  await row.waitFor({ state: "detached", timeout: 30000 });
};

await runScenarios(scenarios);
