// Browser scenarios of the schedule dialog (a node's availability windows painted on a week
// grid, its time zone and throttle) and of what the PACS connections table shows per node. Run
// by tests/e2e/test_ui_schedule.py, which starts the server with one node from the config file
// (locked) and one made through the API, and passes in the environment (besides lib.mjs's):
// PB_NODE (the API's node), PB_LOCKED (the config file's), PB_LOCKED_AVAILABLE ("true"/"false":
// the API's `available` for it), PB_THROTTLE_MESSAGE (the API's words for a negative
// max_bytes_per_second), PB_USER / PB_USER_PASSWORD (an account of role user).
// Usage: node ui/tests/schedule.mjs SCENARIO ... ; exit 0 when every scenario held.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { transformWithEsbuild } from "vite";

import { accessible, env, logIn, runScenarios, shot, TIMEOUT } from "./lib.mjs";

// The node made through the API.
const NODE = env.PB_NODE;

// A cell of the week grid, by its accessible name ("Monday 08:00–08:30").
const cell = (scope, name) => scope.getByRole("gridcell", { name, exact: true });

// Waits until the cell is (or is not) an allowed time.
async function expectSelected(scope, name, value) {
  await cell(scope, name).and(scope.locator(`[aria-selected="${value}"]`)).waitFor({ timeout: TIMEOUT });
}

// A pointer drag with the mouse from the middle of one cell to the middle of another, through
// the cells between.
async function drag(page, scope, from, to) {
  const a = await cell(scope, from).boundingBox();
  const b = await cell(scope, to).boundingBox();
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
  await page.mouse.down();
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 15 });
  await page.mouse.up();
}

async function focusedLabel(page) {
  return page.evaluate(() => document.activeElement?.getAttribute("aria-label"));
}

async function openDialog(page, node) {
  const row = page.locator(`tr[data-node="${node}"]`);
  await row.getByRole("button", { name: "Schedule", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: `Schedule and throttle of ${node}` });
  await dialog.waitFor({ timeout: TIMEOUT });
  return dialog;
}

// The row's schedule summary and throttle ("" when none), once they read so.
async function expectRow(page, node, summary, throttle) {
  const row = page.locator(`tr[data-node="${node}"]`);
  await row.locator("td.schedule .summary", { hasText: summary }).waitFor({ timeout: TIMEOUT });
  const rate = row.locator("td.schedule .throttle");
  await (throttle ? rate.filter({ hasText: throttle }) : rate).waitFor({
    state: throttle ? "visible" : "detached",
    timeout: TIMEOUT,
  });
  assert.equal((await row.locator("td.schedule .summary").textContent()).trim(), summary);
  const shown = await row.locator("td.schedule .throttle").allTextContents();
  assert.deepEqual(shown, throttle ? [`throttled to ${throttle}`] : []);
  return row;
}

const scenarios = {
  // The conversions of ui/src/schedule.ts (cells ↔ the API's windows, the summary, MB/s), read
  // as the browser bundle reads them, against values written here by hand.
  async conversions() {
    const source = new URL("../src/schedule.ts", import.meta.url);
    const { code } = await transformWithEsbuild(readFileSync(source, "utf8"), source.pathname);
    const s = await import("data:text/javascript," + encodeURIComponent(code));
    const week = (cells) => {
      const w = s.emptyWeek();
      for (const [day, from, to] of cells) for (let x = from; x < to; x++) w[day][x] = true;
      return w;
    };
    // Slots are half hours: 16 is 08:00, 36 is 18:00, 44 is 22:00, 48 is midnight.
    const weekdays = week([0, 1, 2, 3, 4].map((d) => [d, 16, 36]));
    assert.deepEqual(s.weekToWindows(weekdays), [
      { days: ["mon", "tue", "wed", "thu", "fri"], start: "08:00", end: "18:00" },
    ]);
    // Friday 22:00 to Saturday 06:00 is one window across midnight; Sunday's runs into Monday.
    assert.deepEqual(s.weekToWindows(week([[4, 44, 48], [5, 0, 12]])), [{ days: ["fri"], start: "22:00", end: "06:00" }]);
    assert.deepEqual(s.weekToWindows(week([[6, 46, 48], [0, 0, 2]])), [{ days: ["sun"], start: "23:00", end: "01:00" }]);
    // A whole day stays a day; a morning that ends after the evening started stays apart (the
    // API would read "10:00"–"12:00" as two hours of one day).
    assert.deepEqual(s.weekToWindows(week([[5, 0, 48], [6, 0, 4]])), [
      { days: ["sat"], start: "00:00", end: "24:00" },
      { days: ["sun"], start: "00:00", end: "02:00" },
    ]);
    assert.deepEqual(s.weekToWindows(week([[0, 20, 48], [1, 0, 24]])), [
      { days: ["mon"], start: "10:00", end: "24:00" },
      { days: ["tue"], start: "00:00", end: "12:00" },
    ]);
    // Two runs on a day, the same runs on several days.
    assert.deepEqual(s.weekToWindows(week([[1, 14, 24], [1, 26, 34], [3, 14, 24], [3, 26, 34]])), [
      { days: ["tue", "thu"], start: "07:00", end: "12:00" },
      { days: ["tue", "thu"], start: "13:00", end: "17:00" },
    ]);
    assert.deepEqual(s.weekToWindows(s.emptyWeek()), []);
    // The API's windows back to cells: full day names, a window across midnight, "24:00".
    assert.deepEqual(
      s.windowsToWeek([{ days: ["Friday"], start: "22:00", end: "06:00" }]),
      { week: week([[4, 44, 48], [5, 0, 12]]), unaligned: [] },
    );
    assert.deepEqual(s.windowsToWeek([{ days: ["sun"], start: "20:00", end: "24:00" }]).week, week([[6, 40, 48]]));
    // Off the half hour: widened to whole cells, and named.
    const odd = { days: ["mon"], start: "08:15", end: "17:45" };
    assert.deepEqual(s.windowsToWeek([odd]), { week: week([[0, 16, 36]]), unaligned: [odd] });
    // Any week survives the trip to windows and back (a fixed pseudo-random sequence of weeks).
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 300; i++) {
      const w = s.emptyWeek().map((row) => row.map(() => random() < (i % 3 === 0 ? 0.9 : 0.3)));
      assert.deepEqual(s.windowsToWeek(s.weekToWindows(w)).week, w, `week ${i}`);
    }
    assert.equal(s.scheduleSummary(null), "always");
    assert.equal(s.scheduleSummary({ timezone: "UTC", windows: [] }), "never");
    assert.equal(
      s.scheduleSummary({ timezone: "Europe/Berlin", windows: [{ days: ["fri", "mon", "tue", "wed", "thu"], start: "08:00", end: "18:00" }] }),
      "Mon–Fri 08:00–18:00 Europe/Berlin",
    );
    assert.equal(s.daysText(["mon", "wed", "thu", "fri", "sun"]), "Mon, Wed–Fri, Sun");
    assert.equal(s.cellLabel({ day: 6, slot: 47 }), "Sunday 23:30–24:00");
    assert.deepEqual(["5", "", "0", "0.25", " 12.5 ", "-1", "abc"].map(s.megabytesToBytes), [
      5000000, 0, 0, 250000, 12500000, -1000000, "abc",
    ]);
    assert.deepEqual([5000000, 2500000, 250000, 0].map(s.rateText), ["5 MB/s", "2.5 MB/s", "250 kB/s", ""]);
    assert.equal(s.bytesToMegabytesText(2500000), "2.5");
  },

  // Paint Monday–Friday 08:00–18:00 by dragging, in Europe/Berlin, at 5 MB/s, and save.
  async schedule(page) {
    await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
    await expectRow(page, NODE, "always", "");
    const dialog = await openDialog(page, NODE);
    const always = dialog.getByLabel("Always available (no schedule)");
    assert.equal(await always.isChecked(), true, "a node without a schedule is always available");
    await always.uncheck();
    const grid = dialog.getByRole("grid", { name: "Allowed hours, Monday to Sunday" });
    await grid.waitFor({ timeout: TIMEOUT });
    await dialog.locator("[data-never]").waitFor({ timeout: TIMEOUT });
    // 7 rows of 48 half hours, each named by its day and times.
    assert.equal(await grid.getByRole("gridcell").count(), 7 * 48);
    assert.equal(await grid.getByRole("rowheader").count(), 7);
    // A drag paints a block; a drag that starts on a painted cell erases one.
    await drag(page, grid, "Saturday 10:00–10:30", "Sunday 11:00–11:30");
    await expectSelected(grid, "Sunday 10:30–11:00", true);
    assert.equal(await grid.locator('[aria-selected="true"]').count(), 2 * 3);
    await drag(page, grid, "Sunday 11:00–11:30", "Saturday 10:00–10:30");
    await expectSelected(grid, "Saturday 10:30–11:00", false);
    assert.equal(await grid.locator('[aria-selected="true"]').count(), 0);
    // Monday 08:00 to Friday 17:30–18:00: five days of ten hours.
    await drag(page, grid, "Monday 08:00–08:30", "Friday 17:30–18:00");
    await expectSelected(grid, "Friday 17:30–18:00", true);
    for (const name of ["Monday 08:00–08:30", "Wednesday 12:00–12:30", "Tuesday 17:30–18:00"]) {
      await expectSelected(grid, name, true);
    }
    for (const name of ["Monday 07:30–08:00", "Friday 18:00–18:30", "Saturday 08:00–08:30", "Sunday 12:00–12:30"]) {
      await expectSelected(grid, name, false);
    }
    assert.equal(await grid.locator('[aria-selected="true"]').count(), 5 * 20);
    await dialog.locator("[data-never]").waitFor({ state: "detached", timeout: TIMEOUT });
    // A click toggles one cell.
    await cell(grid, "Wednesday 12:00–12:30").click();
    await expectSelected(grid, "Wednesday 12:00–12:30", false);
    await cell(grid, "Wednesday 12:00–12:30").click();
    await expectSelected(grid, "Wednesday 12:00–12:30", true);
    await dialog.getByLabel("Time zone").selectOption("Europe/Berlin");
    // The throttle: the API's own words for a rate it refuses, beside the field, live.
    const throttle = dialog.getByLabel("Throttle (MB/s)");
    await throttle.fill("-1");
    const error = dialog.locator("#sched-throttle-error");
    await error.waitFor({ timeout: TIMEOUT });
    assert.equal((await error.textContent()).trim(), env.PB_THROTTLE_MESSAGE);
    assert.equal(await throttle.getAttribute("aria-invalid"), "true");
    assert.match(await throttle.getAttribute("aria-describedby"), /sched-throttle-error/);
    await throttle.fill("5");
    await error.waitFor({ state: "detached", timeout: TIMEOUT });
    // The dry run's answer: whether the node would be available now.
    await dialog.locator("[data-preview]", { hasText: /the node is (open now|closed until)/ }).waitFor({ timeout: TIMEOUT });
    await accessible(page, "the schedule dialog");
    await shot(page, "schedule");
    await dialog.getByRole("button", { name: "Save" }).click();
    await dialog.waitFor({ state: "detached", timeout: TIMEOUT });
    const row = await expectRow(page, NODE, "Mon–Fri 08:00–18:00 Europe/Berlin", "5 MB/s");
    assert.match(await row.locator("td.schedule .availability").textContent(), /^(open now, until|closed until) /);
  },

  // The saved schedule comes back into the grid; the keyboard moves and toggles one cell.
  async keyboard(page) {
    await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
    const dialog = await openDialog(page, NODE);
    assert.equal(await dialog.getByLabel("Always available (no schedule)").isChecked(), false);
    assert.equal(await dialog.getByLabel("Time zone").inputValue(), "Europe/Berlin");
    assert.equal(await dialog.getByLabel("Throttle (MB/s)").inputValue(), "5");
    const grid = dialog.getByRole("grid", { name: "Allowed hours, Monday to Sunday" });
    await expectSelected(grid, "Monday 08:00–08:30", true);
    await expectSelected(grid, "Friday 17:30–18:00", true);
    await expectSelected(grid, "Friday 18:00–18:30", false);
    await expectSelected(grid, "Monday 07:30–08:00", false);
    assert.equal(await grid.locator('[aria-selected="true"]').count(), 5 * 20);
    // One tab stop: from the time zone, Tab enters the grid on its first allowed cell.
    await dialog.getByLabel("Time zone").focus();
    await page.keyboard.press("Tab");
    assert.equal(await focusedLabel(page), "Monday 08:00–08:30");
    for (let i = 0; i < 4; i++) await page.keyboard.press("ArrowDown");
    assert.equal(await focusedLabel(page), "Friday 08:00–08:30");
    await page.keyboard.press("End");
    assert.equal(await focusedLabel(page), "Friday 23:30–24:00");
    await page.keyboard.press("Home");
    for (let i = 0; i < 36; i++) await page.keyboard.press("ArrowRight");
    assert.equal(await focusedLabel(page), "Friday 18:00–18:30");
    await page.keyboard.press("Space");
    await expectSelected(grid, "Friday 18:00–18:30", true);
    await page.keyboard.press("Space");
    await expectSelected(grid, "Friday 18:00–18:30", false);
    await page.keyboard.press("Space");
    await expectSelected(grid, "Friday 18:00–18:30", true);
    // Shift+arrow carries the state along (painted here), and Space takes it back.
    await page.keyboard.press("Shift+ArrowRight");
    assert.equal(await focusedLabel(page), "Friday 18:30–19:00");
    await expectSelected(grid, "Friday 18:30–19:00", true);
    await page.keyboard.press("Space");
    await expectSelected(grid, "Friday 18:30–19:00", false);
    assert.equal(await grid.locator('[aria-selected="true"]').count(), 5 * 20 + 1);
    // Tab leaves the grid (one tab stop) for the next control.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Clear the grid");
    await dialog.getByRole("button", { name: "Save" }).click();
    await dialog.waitFor({ state: "detached", timeout: TIMEOUT });
    await expectRow(page, NODE, "Mon–Thu 08:00–18:00; Fri 08:00–18:30 Europe/Berlin", "5 MB/s");
  },

  // A window off the half hour (set through the API by the Python side) is named, kept as it
  // is while only the throttle changes, and replaced by the grid's once a cell changes.
  async unaligned(page) {
    await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
    await expectRow(page, NODE, "Mon 08:15–17:45 Asia/Kolkata", "5 MB/s");
    let dialog = await openDialog(page, NODE);
    await dialog.locator("[data-unaligned]", { hasText: "Mon 08:15–17:45" }).waitFor({ timeout: TIMEOUT });
    assert.equal(await dialog.getByLabel("Time zone").inputValue(), "Asia/Kolkata");
    // Shown widened to whole half hours.
    const grid = dialog.getByRole("grid");
    await expectSelected(grid, "Monday 08:00–08:30", true);
    await expectSelected(grid, "Monday 17:30–18:00", true);
    assert.equal(await grid.locator('[aria-selected="true"]').count(), 20);
    await dialog.getByLabel("Throttle (MB/s)").fill("0.5");
    await dialog.getByRole("button", { name: "Save" }).click();
    await dialog.waitFor({ state: "detached", timeout: TIMEOUT });
    await expectRow(page, NODE, "Mon 08:15–17:45 Asia/Kolkata", "500 kB/s");
    // Now one cell more: the grid is what is saved.
    dialog = await openDialog(page, NODE);
    assert.equal(await dialog.getByLabel("Throttle (MB/s)").inputValue(), "0.5");
    await cell(dialog.getByRole("grid"), "Tuesday 08:00–08:30").click();
    await expectSelected(dialog.getByRole("grid"), "Tuesday 08:00–08:30", true);
    await dialog.getByRole("button", { name: "Save" }).click();
    await dialog.waitFor({ state: "detached", timeout: TIMEOUT });
    await expectRow(page, NODE, "Mon 08:00–18:00; Tue 08:00–08:30 Asia/Kolkata", "500 kB/s");
  },

  // A node of the config file: read-only, saying why; its schedule and throttle shown.
  async locked(page) {
    await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
    const row = await expectRow(page, env.PB_LOCKED, "Sat–Sun 22:00–06:00 America/New_York", "2.5 MB/s");
    assert.match(await row.locator("[data-locked]").textContent(), /config file; change it there/);
    for (const name of ["Edit", "Delete", "Schedule"]) {
      assert.equal(await row.getByRole("button", { name, exact: true }).count(), 0, `${name} on a locked node`);
    }
    // What does not change the node stays.
    for (const name of ["Test connection", "History"]) {
      assert.equal(await row.getByRole("button", { name, exact: true }).count(), 1, name);
    }
    assert.equal((await row.locator("td.retrieve").textContent()).trim(), "C-MOVE");
    const availability = (await row.locator("td.schedule .availability").textContent()).trim();
    assert.match(availability, env.PB_LOCKED_AVAILABLE === "true" ? /^open now/ : /^closed until /);
    // The API's node beside it may be changed.
    const other = page.locator(`tr[data-node="${NODE}"]`);
    assert.equal(await other.getByRole("button", { name: "Schedule", exact: true }).count(), 1);
    assert.equal((await other.locator("td.retrieve").textContent()).trim(), "auto (C-GET, else C-MOVE)");
    assert.equal((await other.locator("td.last-test").textContent()).trim(), "never");
    await accessible(page, "the connections page");
  },

  // An account of role user sees the schedule, and no way to change it.
  async user(page) {
    await logIn(page, env.PB_USER, env.PB_USER_PASSWORD);
    await expectRow(page, NODE, "Mon–Thu 08:00–18:00; Fri 08:00–18:30 Europe/Berlin", "5 MB/s");
    assert.equal(await page.getByRole("button", { name: "Schedule", exact: true }).count(), 0);
    assert.ok((await page.getByRole("button", { name: "Test connection" }).count()) > 0);
  },
};

await runScenarios(scenarios);
