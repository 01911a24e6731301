// Browser scenarios of the Jobs page: progress pushed by the server's event stream (no polling),
// priority and cancel of a queued job, a job's runs. Run by tests/e2e/test_ui_jobs.py, which
// starts the jobs and passes, besides lib.mjs's: PB_SLOW_JOB (a retrieve slowed to take several
// seconds) and PB_QUEUED_JOB (a retrieve queued behind it on the same node).
import assert from "node:assert/strict";

import { accessible, env, logIn, runScenarios, shot, TIMEOUT } from "./lib.mjs";

const scenarios = {
  async live(page) {
    const asked = [];
    page.on("request", (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith("/api/jobs")) asked.push(`${r.method()} ${u.pathname}`);
    });
    await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
    await page.getByRole("link", { name: "Jobs" }).click();
    await page.getByRole("heading", { name: "Jobs" }).waitFor({ timeout: TIMEOUT });
    await page.locator(".live.on").waitFor({ timeout: TIMEOUT });
    const slow = env.PB_SLOW_JOB;
    const queued = env.PB_QUEUED_JOB;
    // The slow job is seen running part-way, then done, without a reload.
    await page.waitForFunction(
      (id) => {
        const row = document.querySelector(`tr[data-job="${id}"]`);
        const pct = parseInt(row?.querySelector(".pct")?.textContent ?? "", 10);
        return row?.getAttribute("data-state") === "running" && pct > 0 && pct < 100;
      },
      slow,
      { timeout: 30000 },
    );
    assert.match(await page.locator(`tr[data-job="${slow}"] .figures`).textContent(), /of 40 · .* MB/);
    await shot(page, "jobs-live");
    // The job queued behind it: raised to high priority, then canceled; the rows follow the
    // server's word (the stream), not the click.
    const row = page.locator(`tr[data-job="${queued}"]`);
    assert.equal(await row.getAttribute("data-state"), "queued");
    await row.getByLabel(`Priority of job ${queued}`).selectOption("high");
    await page.locator(`tr[data-job="${queued}"][data-priority="high"]`).waitFor({ timeout: TIMEOUT });
    await row.getByRole("button", { name: "Cancel" }).click();
    await page.locator(`tr[data-job="${queued}"][data-state="canceled"]`).waitFor({ timeout: TIMEOUT });
    await page.locator(`tr[data-job="${slow}"][data-state="succeeded"]`).waitFor({ timeout: 60000 });
    assert.equal((await page.locator(`tr[data-job="${slow}"] .pct`).textContent()).trim(), "100 %");
    // Its runs.
    await page.getByRole("button", { name: `Details of job ${slow}` }).click();
    const dialog = page.getByRole("dialog", { name: `Job ${slow}` });
    await dialog.locator('tr[data-outcome="succeeded"]').waitFor({ timeout: TIMEOUT });
    await accessible(page, "the job dialog");
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached", timeout: TIMEOUT });
    await accessible(page, "the jobs page");
    // Pushed, not polled: one stream, and the list itself never asked for.
    assert.equal(asked.filter((a) => a === "GET /api/jobs/events").length, 1, asked.join(", "));
    assert.equal(asked.filter((a) => a === "GET /api/jobs").length, 0, asked.join(", "));
  },
};

await runScenarios(scenarios);
