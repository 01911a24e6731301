// Browser scenarios of the Worklist page. Run by tests/e2e/test_ui_worklist.py, which starts a
// wlmscpfs (the node PB_RIS, mwl on) and the server, whose own receiver takes MPPS (the node
// PB_SELF), and passes, in the environment (besides lib.mjs's): PB_ITEMS, today's items in the
// order of the day ([{accession, name, pid, modality, station, time "HH:MM", procedure}]);
// PB_LATER, tomorrow's item (the same, with date "YYYY-MM-DD"); PB_SERIES ({series UID: instance
// count}), the archive's series of the first item's study; PB_READER / PB_READER_PASSWORD, a
// read-only account; for `discontinue`, PB_RIS_MESSAGE, the API's words when PB_RIS is asked to
// take a step; for `refused`, PB_NSET_MESSAGE, the API's words when our receiver refuses an
// N-SET on a completed step.
// Usage: node ui/tests/worklist.mjs SCENARIO ... ; exit 0 when every scenario held.
//
// The scenarios follow each other on one server: `start` starts the first item, `complete`
// completes it, `discontinue` starts and discontinues the second, `refused` the third. `none`
// runs while no node has mwl on, `no-mpps` while none has mpps on.
import assert from "node:assert/strict";

import { accessible, env, expectRefusal, logIn, runScenarios, shot, TIMEOUT, url } from "./lib.mjs";

const ITEMS = JSON.parse(env.PB_ITEMS ?? "[]");
const LATER = JSON.parse(env.PB_LATER ?? "{}");
const SERIES = JSON.parse(env.PB_SERIES ?? "{}");
const [FIRST, SECOND, THIRD] = ITEMS;
const MPPS_TIMEOUT = 60000; // an N-CREATE / N-SET and the worklist asked again

async function openWorklist(page, user = "admin", password = env.PB_ADMIN_PASSWORD) {
  await logIn(page, user, password);
  await page.getByRole("link", { name: "Worklist", exact: true }).click();
  await page.getByRole("heading", { name: "Worklist", exact: true, level: 1 }).waitFor({ timeout: TIMEOUT });
}

const row = (page, it) => page.locator(`table.worklist tr[data-accession="${it.accession}"]`);
const label = (it) => `${it.name} (${it.accession})`;

// The accession numbers listed, in the table's order, once the summary says `summary`.
async function listed(page, summary) {
  await page.locator("#worklist-summary", { hasText: summary }).waitFor({ timeout: MPPS_TIMEOUT });
  return page.locator("table.worklist tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.accession));
}

// The item's MPPS state, in words, once the row says so; and the actions its row offers.
async function stateIs(page, it, state) {
  await page.locator(`table.worklist tr[data-accession="${it.accession}"][data-state="${state}"]`).waitFor({ timeout: MPPS_TIMEOUT });
  assert.match(await row(page, it).locator("td.mpps").innerText(), new RegExp(`^(✓ |✕ )?${state}`), `${it.accession}: ${state}`);
}

async function actions(page, it) {
  return row(page, it).locator("td.actions button").evaluateAll((all) => all.map((b) => b.textContent));
}

async function outcome(page, text) {
  await page.locator("#worklist-outcome", { hasText: text }).waitFor({ timeout: MPPS_TIMEOUT });
}

// The dialog's alert shows exactly `text`.
async function dialogSays(dialog, text) {
  const alert = dialog.getByRole("alert");
  await alert.waitFor({ timeout: MPPS_TIMEOUT });
  assert.equal((await alert.textContent()).trim(), text);
}

// Starts `it` through the dialog that asks which node (more than one takes MPPS), on PB_SELF.
async function startOnSelf(page, it) {
  await row(page, it).getByRole("button", { name: `Start ${label(it)}`, exact: true }).click();
  const dialog = page.getByRole("dialog", { name: `Start ${label(it)}` });
  await dialog.getByLabel("MPPS node", { exact: true }).selectOption(env.PB_SELF);
  await dialog.getByRole("button", { name: "Start", exact: true }).click();
  await dialog.waitFor({ state: "detached", timeout: MPPS_TIMEOUT });
  await stateIs(page, it, "in progress");
}

// The API as the admin (HTTP basic), behind the page's back.
async function apiCall(method, path, body) {
  const auth = Buffer.from(`admin:${env.PB_ADMIN_PASSWORD}`).toString("base64");
  const response = await fetch(url + path, {
    method,
    headers: { Authorization: `Basic ${auth}`, "Content-Type": "application/json", Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
  return data;
}

const scenarios = {
  // Today's items in the order of the day, the Latin-1 name decoded; the filters.
  async list(page) {
    await openWorklist(page);
    const node = page.getByLabel("Worklist node", { exact: true });
    assert.equal(await node.inputValue(), env.PB_RIS);
    assert.deepEqual(await node.locator("option").evaluateAll((all) => all.map((o) => o.value)), [env.PB_RIS], "the nodes with mwl on");
    assert.deepEqual(await listed(page, `${ITEMS.length} scheduled steps on ${env.PB_RIS}, today`), ITEMS.map((it) => it.accession));
    const heads = await page.locator("table.worklist thead th").allInnerTexts();
    assert.deepEqual(heads, ["Time", "Modality", "Station", "Patient", "Accession", "Procedure", "MPPS", "Actions"]);
    for (const it of ITEMS) {
      const cells = await row(page, it).locator("td, th").allInnerTexts();
      assert.deepEqual(
        cells.map((c) => c.trim()),
        [it.time, it.modality, it.station, `${it.name}\nID ${it.pid}`, it.accession, it.procedure, "not started", "Start"],
        it.accession,
      );
      assert.deepEqual(await actions(page, it), ["Start"]);
    }
    await accessible(page, "the worklist");

    // Modality, typed in lower case and sent from the keyboard.
    const modality = page.getByLabel("Modality", { exact: true });
    const mr = ITEMS.filter((it) => it.modality === "MR");
    await modality.fill("mr");
    await modality.press("Enter");
    assert.deepEqual(await listed(page, `${mr.length} scheduled step`), mr.map((it) => it.accession));
    await modality.fill("");
    const station = page.getByLabel("Station AE title", { exact: true });
    const ct1 = ITEMS.filter((it) => it.station === "CT1");
    await station.fill("CT1");
    await page.getByRole("button", { name: "Refresh", exact: true }).click();
    assert.deepEqual(await listed(page, `${ct1.length} scheduled steps`), ct1.map((it) => it.accession));
    await station.fill("");

    // Any date: tomorrow's item too, last, with its date.
    await page.getByRole("radio", { name: "Any date" }).check();
    await page.getByRole("button", { name: "Refresh", exact: true }).click();
    assert.deepEqual(await listed(page, `${ITEMS.length + 1} scheduled steps on ${env.PB_RIS}, any date`), [...ITEMS, LATER].map((it) => it.accession));
    assert.equal((await page.locator("table.worklist thead th").first().innerText()).trim(), "Date and time");
    assert.equal((await row(page, LATER).locator("td").first().innerText()).trim(), `${LATER.date} ${LATER.time}`);
    // Another day: tomorrow's only.
    await page.getByRole("radio", { name: "Another day" }).check();
    await page.getByLabel("Day", { exact: true }).fill(LATER.date);
    await page.getByRole("button", { name: "Refresh", exact: true }).click();
    assert.deepEqual(await listed(page, `1 scheduled step on ${env.PB_RIS}, on ${LATER.date}`), [LATER.accession]);
    await page.getByRole("radio", { name: "Today" }).check();
    await page.getByRole("button", { name: "Refresh", exact: true }).click();
    assert.deepEqual(await listed(page, `${ITEMS.length} scheduled steps on ${env.PB_RIS}, today`), ITEMS.map((it) => it.accession));
  },

  // One node takes MPPS (PB_SELF): Start sends at once.
  async start(page) {
    await openWorklist(page);
    await stateIs(page, FIRST, "not started");
    await row(page, FIRST).getByRole("button", { name: `Start ${label(FIRST)}`, exact: true }).click();
    await stateIs(page, FIRST, "in progress");
    assert.equal(await page.getByRole("dialog").count(), 0, "no node to choose");
    await outcome(page, `${label(FIRST)}: started, reported to ${env.PB_SELF}`);
    assert.deepEqual(await actions(page, FIRST), ["Complete", "Discontinue"]);
    for (const it of [SECOND, THIRD]) await stateIs(page, it, "not started");
  },

  // Complete with the archive's series of the item's study, all chosen by default.
  async complete(page) {
    await openWorklist(page);
    await stateIs(page, FIRST, "in progress");
    await row(page, FIRST).getByRole("button", { name: `Complete ${label(FIRST)}`, exact: true }).click();
    const dialog = page.getByRole("dialog", { name: `Complete ${label(FIRST)}` });
    const count = Object.keys(SERIES).length;
    await dialog.locator("#complete-count", { hasText: `${count} of ${count} series chosen` }).waitFor({ timeout: TIMEOUT });
    const listedSeries = await dialog.locator("tr[data-series]").evaluateAll((rows) =>
      rows.map((r) => [r.dataset.series, r.querySelector("input").checked, r.lastElementChild.textContent]),
    );
    assert.deepEqual(
      listedSeries.sort(),
      Object.entries(SERIES)
        .map(([uid, n]) => [uid, true, String(n)])
        .sort(),
    );
    // The keyboard: Space leaves a series out and takes it back.
    const box = dialog.getByRole("checkbox").first();
    await box.focus();
    await page.keyboard.press("Space");
    await dialog.locator("#complete-count", { hasText: `${count - 1} of ${count}` }).waitFor({ timeout: TIMEOUT });
    await page.keyboard.press("Space");
    await dialog.locator("#complete-count", { hasText: `${count} of ${count}` }).waitFor({ timeout: TIMEOUT });
    await accessible(page, "the complete dialog");
    await shot(page, "worklist-complete");
    await dialog.getByRole("button", { name: "Complete", exact: true }).click();
    await dialog.waitFor({ state: "detached", timeout: MPPS_TIMEOUT });
    await stateIs(page, FIRST, "completed");
    await outcome(page, `${label(FIRST)}: completed with ${count} series`);
    assert.equal(await row(page, FIRST).getAttribute("class"), "done");
    assert.match(await row(page, FIRST).locator("td.mpps").innerText(), /^✓ completed/);
    assert.deepEqual(await actions(page, FIRST), []);
  },

  // Two nodes take MPPS now: Start asks which, the worklist's own first; it refuses (the API's
  // words in the dialog), PB_SELF takes it; then Discontinue with reason 110514, from the keyboard.
  async discontinue(page) {
    expectRefusal(page, 502, "/api/mpps");
    await openWorklist(page);
    await stateIs(page, SECOND, "not started");
    await row(page, SECOND).getByRole("button", { name: `Start ${label(SECOND)}`, exact: true }).click();
    const start = page.getByRole("dialog", { name: `Start ${label(SECOND)}` });
    const node = start.getByLabel("MPPS node", { exact: true });
    assert.equal(await node.inputValue(), env.PB_RIS, "the worklist node itself, which takes MPPS");
    assert.deepEqual((await node.locator("option").evaluateAll((all) => all.map((o) => o.value))).sort(), [env.PB_RIS, env.PB_SELF].sort());
    await start.getByRole("button", { name: "Start", exact: true }).click();
    await dialogSays(start, env.PB_RIS_MESSAGE);
    await accessible(page, "the start dialog with a refusal");
    await stateIs(page, SECOND, "not started");
    await node.selectOption(env.PB_SELF);
    await start.getByRole("button", { name: "Start", exact: true }).click();
    await start.waitFor({ state: "detached", timeout: MPPS_TIMEOUT });
    await stateIs(page, SECOND, "in progress");

    // Opened from the keyboard; Escape closes it.
    const discontinueButton = row(page, SECOND).getByRole("button", { name: `Discontinue ${label(SECOND)}`, exact: true });
    await discontinueButton.focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog", { name: `Discontinue ${label(SECOND)}` });
    await dialog.waitFor({ timeout: TIMEOUT });
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached", timeout: TIMEOUT });
    await discontinueButton.click();
    const reason = dialog.getByLabel("Reason", { exact: true });
    assert.equal(await reason.inputValue(), "110513", "the default: unspecified reason");
    const codes = await reason.locator("option").evaluateAll((all) => all.map((o) => [o.value, o.textContent]));
    for (const [code, meaning] of [
      ["110513", "Discontinued for unspecified reason"],
      ["110514", "Incorrect worklist entry selected"],
      ["110501", "Equipment failure"],
      ["110505", "Patient refused to continue procedure"],
      ["110504", "Patient died"],
    ]) {
      assert.ok(codes.some(([c, text]) => c === code && text === `${meaning} (${code})`), `${code} ${meaning}`);
    }
    await reason.selectOption("110514");
    await accessible(page, "the discontinue dialog");
    await dialog.getByRole("button", { name: "Discontinue", exact: true }).focus();
    await page.keyboard.press("Enter");
    await dialog.waitFor({ state: "detached", timeout: MPPS_TIMEOUT });
    await stateIs(page, SECOND, "discontinued");
    await outcome(page, `${label(SECOND)}: discontinued (Incorrect worklist entry selected)`);
    assert.deepEqual(await actions(page, SECOND), []);
    await stateIs(page, FIRST, "completed");
    await stateIs(page, THIRD, "not started");
  },

  // A step completed behind the page's back: the page's Complete (no series in the archive) is
  // refused by the node, in the API's words; the list asked again shows it completed.
  async refused(page) {
    expectRefusal(page, 409, "/api/mpps/");
    await openWorklist(page);
    await startOnSelf(page, THIRD);
    await stateIs(page, FIRST, "completed");
    await stateIs(page, SECOND, "discontinued");
    await accessible(page, "the worklist in every state");
    await shot(page, "worklist");
    const [step] = await apiCall("GET", `/api/mpps?direction=sent&accession_number=${encodeURIComponent(THIRD.accession)}`);
    assert.equal(step.status, "IN PROGRESS");
    await apiCall("PUT", `/api/mpps/${encodeURIComponent(step.sop_instance_uid)}`, { status: "COMPLETED" });

    await row(page, THIRD).getByRole("button", { name: `Complete ${label(THIRD)}`, exact: true }).click();
    const dialog = page.getByRole("dialog", { name: `Complete ${label(THIRD)}` });
    await dialog.locator("#complete-no-series").waitFor({ timeout: TIMEOUT });
    assert.match(await dialog.locator("#complete-no-series").innerText(), /^The archive holds no series of this study/);
    await dialog.getByRole("button", { name: "Complete", exact: true }).click();
    await dialogSays(dialog, env.PB_NSET_MESSAGE);
    await stateIs(page, THIRD, "completed");
    await dialog.getByRole("button", { name: "Cancel", exact: true }).click();
    await dialog.waitFor({ state: "detached", timeout: TIMEOUT });
    assert.deepEqual(await actions(page, THIRD), []);
  },

  // No node has mwl on: said, with the way to the nodes.
  async none(page) {
    await openWorklist(page);
    const none = page.locator("#worklist-no-node");
    await none.waitFor({ timeout: TIMEOUT });
    assert.match(await none.innerText(), /^No node offers a modality worklist/);
    assert.equal(await none.getByRole("link", { name: "PACS connections" }).getAttribute("href"), "#/connections");
    assert.equal(await page.getByLabel("Worklist node", { exact: true }).count(), 0);
    assert.equal(await page.getByRole("button", { name: "Refresh" }).count(), 0);
    await accessible(page, "the worklist page without a worklist node");
  },

  // No node takes MPPS: the list, said so, and no Start.
  async "no-mpps"(page) {
    await openWorklist(page);
    await listed(page, `scheduled steps on ${env.PB_RIS}, today`);
    const note = page.locator("#worklist-no-mpps");
    await note.waitFor({ timeout: TIMEOUT });
    assert.match(await note.innerText(), /^No node takes MPPS/);
    assert.equal(await note.getByRole("link", { name: "PACS connections" }).getAttribute("href"), "#/connections");
    assert.equal(await page.getByRole("button", { name: /^Start/ }).count(), 0);
  },

  // A read-only account: the node, the reason, and nothing to do.
  async reader(page) {
    await logIn(page, env.PB_READER, env.PB_READER_PASSWORD);
    await page.getByRole("link", { name: "Worklist", exact: true }).click();
    await page.getByRole("heading", { name: "Worklist", exact: true, level: 1 }).waitFor({ timeout: TIMEOUT });
    await page.getByLabel("Worklist node", { exact: true }).waitFor({ timeout: TIMEOUT });
    await page.locator("#worklist-read-only").waitFor({ timeout: TIMEOUT });
    for (const name of ["Refresh", "Start", "Complete", "Discontinue"]) {
      assert.equal(await page.getByRole("button", { name: new RegExp(`^${name}`) }).count(), 0, name);
    }
    assert.equal(await page.locator("table.worklist").count(), 0);
    await accessible(page, "the worklist page of a read-only account");
  },
};

await runScenarios(scenarios);
