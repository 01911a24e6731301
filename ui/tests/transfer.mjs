// Browser scenarios of the Import and Send pages. Run by tests/e2e/test_ui_transfer.py, which
// starts two Orthancs and the server and passes, in the environment (besides lib.mjs's):
// PB_NODE_A (queryable, the default query/retrieve node) and PB_NODE_B (storable, the default
// storage node); PB_PATIENT, the patient name of both studies on A; PB_STUDY, the one dated
// today, with PB_INSTANCES instances and PB_SERIES ({series UID: instance count}); PB_PROJECT,
// the project to file it under; PB_CSV_STUDY, the older study, which the sheet PB_CSV_GOOD names;
// the API's own words for a reversed date range (PB_DATE_MESSAGE), a project with a space
// (PB_PROJECT_MESSAGE) and the malformed sheet PB_CSV_BAD (PB_CSV_BAD_MESSAGE);
// PB_READER / PB_READER_PASSWORD, a read-only account; PB_CLOSED_NODE, a queryable node (A
// again) that is never available and keeps one answer, with its unavailable_reason
// (PB_CLOSED_REASON) and its refusal of a find (PB_CLOSED_MESSAGE).
// Usage: node ui/tests/transfer.mjs SCENARIO ... ; exit 0 when every scenario held.
//
// The Jobs page is someone else's: only its row `tr[data-job="ID"]` and the state's word in it
// ("succeeded") are relied on.
import assert from "node:assert/strict";

import { accessible, env, expectRefusal, logIn, runScenarios, shot, TIMEOUT } from "./lib.mjs";

const JOB_TIMEOUT = 120000;

async function openPage(page, name) {
  await page.getByRole("link", { name, exact: true }).click();
  await page.getByRole("heading", { name, exact: true, level: 1 }).waitFor({ timeout: TIMEOUT });
}

// On the Jobs page: the job's row shows an end; it must be a success.
async function jobSucceeds(page, id) {
  await page.getByRole("heading", { name: "Jobs", level: 1 }).waitFor({ timeout: TIMEOUT });
  const row = page.locator(`tr[data-job="${id}"]`);
  // (The row's text runs its cells together: no word boundaries to rely on.)
  await row.filter({ hasText: /succeeded|partial|failed|canceled/ }).waitFor({ timeout: JOB_TIMEOUT });
  assert.match(await row.textContent(), /succeeded/, `job ${id}`);
  // The link (#/jobs/ID) opened the job's dialog too; closed, the page is usable again.
  const dialog = page.getByRole("dialog", { name: `Job ${id}` });
  await dialog.locator('tr[data-outcome="succeeded"]').waitFor({ timeout: TIMEOUT });
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "detached", timeout: TIMEOUT });
}

// Logs in as the admin and opens the page; its node choice (`label`) offers exactly `options`,
// `preselected` chosen.
async function openWithNodes(page, name, label, preselected, options) {
  await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
  await openPage(page, name);
  const node = page.getByLabel(label, { exact: true });
  await node.waitFor({ timeout: TIMEOUT });
  assert.equal(await node.inputValue(), preselected, `${label}: the default is preselected`);
  const offered = await node.locator("option").evaluateAll((all) => all.map((o) => o.value));
  assert.deepEqual(offered, options, `${label}: the nodes that fit`);
  return node;
}

async function searchByPatient(page) {
  await page.getByLabel("Patient name", { exact: true }).fill(env.PB_PATIENT);
  await page.getByRole("radio", { name: "Last 7 days" }).check();
  // Submitted from the keyboard.
  await page.getByLabel("Patient name", { exact: true }).press("Enter");
  const row = page.locator(`tr[data-study="${env.PB_STUDY}"]`);
  await row.waitFor({ timeout: 30000 });
  return row;
}

const scenarios = {
  // A node outside its availability window: the API's reason under the choice, its refusal of a
  // search beside it; asked anyway, it answers its max_results (1) and says there is more, and
  // the study opens to its series.
  async closed(page) {
    expectRefusal(page, 409, "/find");
    const node = await openWithNodes(page, "Import", "Query/retrieve node", env.PB_NODE_A, [env.PB_NODE_A, env.PB_CLOSED_NODE]);
    await node.selectOption(env.PB_CLOSED_NODE);
    const availability = page.locator("#import-node-availability");
    await page.locator('#import-node-availability[data-available="false"]').waitFor({ timeout: TIMEOUT });
    assert.equal((await availability.textContent()).trim(), env.PB_CLOSED_REASON);
    await page.getByLabel("Patient name", { exact: true }).fill(env.PB_PATIENT);
    await page.getByRole("button", { name: "Search", exact: true }).click();
    const refused = page.locator("#import-node-error");
    await refused.waitFor({ timeout: TIMEOUT });
    assert.equal((await refused.textContent()).trim(), env.PB_CLOSED_MESSAGE);
    assert.equal(await node.getAttribute("aria-invalid"), "true");
    assert.equal(await page.locator("tr[data-study]").count(), 0);
    await page.getByLabel("Query now, outside the node's availability window", { exact: true }).check();
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await page.locator("tr[data-study]").first().waitFor({ timeout: 30000 });
    await refused.waitFor({ state: "detached", timeout: TIMEOUT });
    assert.equal(await page.locator("tr[data-study]").count(), 1, "max_results is 1");
    assert.match(await page.locator("#find-summary").textContent(), /^1 study found on .*: more match than the node answers at once/);
    // Its series are asked outside the window too.
    await page.locator("tr[data-study]").getByRole("button", { name: env.PB_PATIENT, exact: true }).click();
    await page.locator("tr[data-series]").first().waitFor({ timeout: 30000 });
    await accessible(page, "the import page of a node outside its window");
  },

  // Find the study on A, open its series, retrieve it under a project, follow the job; then the
  // same search marks it as in the archive.
  async import(page) {
    await openWithNodes(page, "Import", "Query/retrieve node", env.PB_NODE_A, [env.PB_NODE_A, env.PB_CLOSED_NODE]);
    assert.match(await page.locator("#import-node-availability").textContent(), /^available now/);

    // A custom range that ends before it starts: the API's words beside the dates.
    await page.getByLabel("Patient name", { exact: true }).fill(env.PB_PATIENT);
    await page.getByRole("radio", { name: "Custom" }).check();
    await page.getByLabel("From", { exact: true }).fill("2024-02-01");
    await page.getByLabel("To", { exact: true }).fill("2024-01-01");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    const dateError = page.locator("#find-date-error");
    await dateError.waitFor({ timeout: TIMEOUT });
    assert.equal((await dateError.textContent()).trim(), env.PB_DATE_MESSAGE);
    assert.equal(await page.getByLabel("From", { exact: true }).getAttribute("aria-invalid"), "true");

    // The last 7 days: today's study, not the one of 2024 of the same patient.
    const row = await searchByPatient(page);
    await dateError.waitFor({ state: "detached", timeout: TIMEOUT });
    assert.equal(await page.locator("tr[data-study]").count(), 1, "one study in the last 7 days");
    assert.match(await page.locator("#find-summary").textContent(), /^1 study found/);
    await page.locator(`tr[data-study="${env.PB_STUDY}"][data-in-archive="no"]`).waitFor({ timeout: TIMEOUT });
    const cells = await row.locator("td").allTextContents();
    const series = JSON.parse(env.PB_SERIES);
    assert.deepEqual(cells.slice(-3), [String(Object.keys(series).length), env.PB_INSTANCES, "not in archive"]);

    // Its series, asked of the node when the row opens (from the keyboard).
    await row.getByRole("button", { name: env.PB_PATIENT, exact: true }).press("Enter");
    for (const [uid, count] of Object.entries(series)) {
      const s = page.locator(`tr[data-series="${uid}"]`);
      await s.waitFor({ timeout: 30000 });
      assert.equal((await s.locator("td").last().textContent()).trim(), String(count));
    }

    // A project the API refuses: its words beside the field; then a good one.
    await row.getByRole("checkbox").press("Space");
    assert.ok(await row.getByRole("checkbox").isChecked());
    const project = page.getByLabel("Project", { exact: true });
    await project.fill("UI PROJ");
    await page.getByRole("button", { name: "Retrieve", exact: true }).click();
    const projectError = page.locator("#retrieve-project-error");
    await projectError.waitFor({ timeout: TIMEOUT });
    assert.equal((await projectError.textContent()).trim(), env.PB_PROJECT_MESSAGE);
    assert.equal(await project.getAttribute("aria-invalid"), "true");
    await project.fill(env.PB_PROJECT);
    await page.getByRole("button", { name: "Retrieve", exact: true }).click();
    const link = page.locator("#retrieve-result a[data-job-link]");
    await link.waitFor({ timeout: TIMEOUT });
    await projectError.waitFor({ state: "detached", timeout: TIMEOUT });
    const id = await link.getAttribute("data-job-link");
    await accessible(page, "the import page with a study, its series and a retrieve");
    await shot(page, "import");

    await link.click();
    await jobSucceeds(page, id);

    await openPage(page, "Import");
    const again = await searchByPatient(page);
    await page.locator(`tr[data-study="${env.PB_STUDY}"][data-in-archive="yes"]`).waitFor({ timeout: TIMEOUT });
    assert.equal((await again.locator("td.in-archive").textContent()).trim(), "in archive");
  },

  // A spreadsheet: a malformed one is refused with the API's words (line and column) beside the
  // file; a good one shows what its row found; Confirm retrieves it.
  async sheet(page) {
    await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
    await openPage(page, "Import");
    const file = page.getByLabel("Spreadsheet (CSV)", { exact: true });
    await file.setInputFiles({ name: "bad.csv", mimeType: "text/csv", buffer: Buffer.from(env.PB_CSV_BAD) });
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    const error = page.locator("#csv-file-error");
    await error.waitFor({ timeout: TIMEOUT });
    assert.equal((await error.textContent()).trim(), env.PB_CSV_BAD_MESSAGE);
    assert.equal(await file.getAttribute("aria-invalid"), "true");

    await file.setInputFiles({ name: "good.csv", mimeType: "text/csv", buffer: Buffer.from(env.PB_CSV_GOOD) });
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    await error.waitFor({ state: "detached", timeout: TIMEOUT });
    const line = page.locator('tr[data-line="2"][data-state="one_match"]');
    await line.waitFor({ timeout: 30000 });
    await line.locator(`li[data-match="${env.PB_CSV_STUDY}"]`).waitFor({ timeout: TIMEOUT });
    assert.equal(await line.getByRole("combobox", { name: "Line 2: take or skip" }).inputValue(), "all");
    await page.locator('#sheet-status [data-phase="confirmation"]').waitFor({ timeout: TIMEOUT });
    await page.getByRole("button", { name: "Confirm", exact: true }).click();
    await line.locator("span.state.succeeded").waitFor({ timeout: JOB_TIMEOUT });
    await page.locator('#sheet-status [data-phase="done"]').filter({ hasText: "succeeded" }).waitFor({ timeout: JOB_TIMEOUT });
    await accessible(page, "the import page with a confirmed spreadsheet");
    await shot(page, "import-sheet");
  },

  // Send the retrieved study from the archive to B, the default storage node.
  async send(page) {
    await openWithNodes(page, "Send", "Destination node", env.PB_NODE_B, [env.PB_NODE_B]);
    const row = page.locator(`tr[data-study="${env.PB_STUDY}"]`);
    await row.waitFor({ timeout: TIMEOUT });
    assert.equal((await row.locator("td").last().textContent()).trim(), env.PB_INSTANCES);
    // Its series may be chosen one by one; choosing the whole study chooses them all.
    await row.getByRole("button", { name: env.PB_PATIENT, exact: true }).click();
    const series = Object.keys(JSON.parse(env.PB_SERIES));
    for (const uid of series) await page.locator(`tr[data-series="${uid}"]`).waitFor({ timeout: TIMEOUT });
    await row.getByRole("checkbox").check();
    for (const uid of series) {
      const box = page.locator(`tr[data-series="${uid}"]`).getByRole("checkbox");
      assert.ok((await box.isChecked()) && (await box.isDisabled()), `series ${uid} goes with its study`);
    }
    await page.getByRole("button", { name: "Send", exact: true }).click();
    const link = page.locator("#send-result a[data-job-link]");
    await link.waitFor({ timeout: TIMEOUT });
    assert.equal(await link.count(), 1, "one job: the whole study");
    const id = await link.getAttribute("data-job-link");
    await accessible(page, "the send page with a send queued");
    await shot(page, "send");
    await link.click();
    await jobSucceeds(page, id);
  },

  // A read-only account sees the pages without the controls that change anything.
  async reader(page) {
    await logIn(page, env.PB_READER, env.PB_READER_PASSWORD);
    await openPage(page, "Import");
    await page.getByLabel("Query/retrieve node", { exact: true }).waitFor({ timeout: TIMEOUT });
    await page.locator("#import-read-only").waitFor({ timeout: TIMEOUT });
    for (const name of ["Search", "Retrieve", "Upload", "Confirm"]) {
      assert.equal(await page.getByRole("button", { name, exact: true }).count(), 0, name);
    }
    await accessible(page, "the import page of a read-only account");
    await openPage(page, "Send");
    await page.locator(`tr[data-study="${env.PB_STUDY}"]`).waitFor({ timeout: TIMEOUT });
    assert.equal(await page.getByRole("button", { name: "Send", exact: true }).count(), 0);
    assert.equal(await page.getByRole("checkbox").count(), 0);
  },
};

await runScenarios(scenarios);
