// Browser scenarios of the administration pages: receivers (with the whitelist and rule editors
// and "Try it"), users, API tokens, the audit log. Run by tests/e2e/test_ui_admin.py, which
// checks their effects through the API and DCMTK between them, and passes (besides lib.mjs's):
//   PB_RCV_AE, PB_RCV_PORT                 the receiver to add
//   PB_BAD_WHITELIST, PB_GOOD_WHITELIST    a whitelist the API refuses, and one it takes
//   PB_BAD_WHITELIST_LINE, _MESSAGE        the line it names and its words for it
//   PB_RULE                                the project rule typed in the dialog
//   PB_TRY_ATTRIBUTES                      attributes pasted into Try it (Keyword=value lines)
//   PB_UNKNOWN_UID, _MESSAGE               an instance the archive lacks, the API's words for it
//   PB_BAD_RULES, PB_BAD_RULE_LINE         project rules the API refuses, the line it names
//   PB_BAD_RULE_MESSAGE, _SITE_RULE_MESSAGE its words for them as a receiver's and as site rules
//   PB_USER, PB_USER_PASSWORD              the account the users scenario makes (role user)
//   PB_WEAK_PASSWORD_MESSAGE               the API's words for the password "short"
//   PB_LAST_ADMIN_MESSAGE                  the API's words for demoting the last admin
//   PB_TOKEN_NAME                          the token to make
//   PB_OUT                                 a folder: try.json (the labels Try it showed), token.txt
//   PB_RCV_ID                              (audit) the receiver's id in the API
// Usage: node ui/tests/admin.mjs SCENARIO ... ; exit 0 when every scenario held.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";

import { accessible, env, expectRefusal, logIn, runScenarios, shot, TIMEOUT, url } from "./lib.mjs";

// Waits until the editor of `field` (in `scope`) shows `message` and marks line `line`, alone.
async function expectLineError(scope, field, errorId, message, line) {
  const error = scope.locator(`#${errorId}`);
  await error.waitFor({ timeout: TIMEOUT });
  assert.equal((await error.textContent()).trim(), message);
  const editor = scope.locator(`.lines-editor[data-field="${field}"]`);
  assert.deepEqual(await editor.locator(".gutter span.bad").evaluateAll((s) => s.map((e) => e.dataset.line)), [String(line)]);
  assert.equal(await editor.locator(".backdrop .bad-line").count(), 1);
  const box = editor.locator("textarea");
  assert.equal(await box.getAttribute("aria-invalid"), "true");
  assert.match(await box.getAttribute("aria-describedby"), new RegExp(errorId));
}

async function openPage(page, link, heading) {
  await page.getByRole("link", { name: link, exact: true }).click();
  await page.getByRole("heading", { name: heading, exact: true }).waitFor({ timeout: TIMEOUT });
}

const scenarios = {
  // Add a receiver: the whitelist's bad line is named by the API and marked; fixed, it is saved
  // and listens. Then its rules: a bad rule line is marked, and "Try it" shows what the rule
  // typed in the dialog decides. The site-wide rule editor names a bad line too.
  async receivers(page) {
    expectRefusal(page, 404, "/api/routing/try"); // the unknown instance, at the end
    await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
    await openPage(page, "Receivers", "Receivers");
    // The config file's receiver is shown as such, with no way to change it.
    const locked = page.locator("tbody tr").filter({ hasText: "locked: from the config file" });
    await locked.first().waitFor({ timeout: TIMEOUT });
    assert.equal(await locked.first().getByRole("button", { name: "Edit" }).count(), 0);

    await page.getByRole("button", { name: "Add receiver" }).click();
    const dialog = page.getByRole("dialog", { name: "Add receiver" });
    await dialog.waitFor({ timeout: TIMEOUT });
    await dialog.getByLabel("AE title", { exact: true }).fill(env.PB_RCV_AE);
    await dialog.getByLabel("Port", { exact: true }).fill(env.PB_RCV_PORT);
    await dialog.getByLabel("Bind address", { exact: true }).fill("127.0.0.1");
    await dialog.getByLabel("Whitelist on", { exact: true }).check();
    await dialog.getByLabel("Whitelist", { exact: true }).fill(env.PB_BAD_WHITELIST);
    await expectLineError(dialog, "whitelist", "rcv-whitelist-error", env.PB_BAD_WHITELIST_MESSAGE, env.PB_BAD_WHITELIST_LINE);
    await shot(page, "receiver-dialog");
    await accessible(page, "the add-receiver dialog");
    await dialog.getByLabel("Whitelist", { exact: true }).fill(env.PB_GOOD_WHITELIST);
    await dialog.locator("#rcv-whitelist-error").waitFor({ state: "detached", timeout: TIMEOUT });
    assert.equal(await dialog.locator(".lines-editor .gutter span.bad").count(), 0);
    await dialog.getByRole("button", { name: "Add receiver" }).click();
    await dialog.waitFor({ state: "detached", timeout: TIMEOUT });

    const row = page.locator(`tr[data-ae="${env.PB_RCV_AE}"]`);
    await row.waitFor({ timeout: TIMEOUT });
    await row.locator("td.status", { hasText: /^listening$/ }).waitFor({ timeout: TIMEOUT });
    assert.match(await row.textContent(), new RegExp(`${env.PB_RCV_PORT}127\\.0\\.0\\.1yeslistening1 listed`));
    await shot(page, "receivers");

    // Its rules, in the edit dialog: a line the API refuses is marked while one types.
    await row.getByRole("button", { name: "Edit" }).click();
    const edit = page.getByRole("dialog", { name: `Edit receiver ${env.PB_RCV_AE}` });
    await edit.waitFor({ timeout: TIMEOUT });
    assert.equal(await edit.getByLabel("Whitelist", { exact: true }).inputValue(), env.PB_GOOD_WHITELIST);
    const rules = edit.getByLabel("Project rules", { exact: true });
    await rules.fill(env.PB_BAD_RULES);
    await expectLineError(edit, "routing.project", "rcv-routing-project-error", env.PB_BAD_RULE_MESSAGE, env.PB_BAD_RULE_LINE);
    await rules.fill(env.PB_RULE);
    await edit.locator("#rcv-routing-project-error").waitFor({ state: "detached", timeout: TIMEOUT });

    // Try it: the rule as typed (not saved yet) decides the project.
    await edit.getByLabel("Attributes", { exact: true }).fill(env.PB_TRY_ATTRIBUTES);
    await edit.getByRole("button", { name: "Try it" }).click();
    const project = edit.locator('[data-try-result] tr[data-label="project"]');
    await project.waitFor({ timeout: TIMEOUT });
    assert.equal((await project.locator("td.value").textContent()).trim(), "42");
    const source = project.locator("td.source");
    assert.equal(await source.getAttribute("data-source"), "receiver_rule");
    assert.equal(await source.getAttribute("data-line"), "1");
    assert.match(await source.textContent(), /the receiver's rule, line 1/);
    await shot(page, "receiver-try");
    // What the page predicts, for the Python side to compare with where the instance is filed.
    const shown = {};
    for (const label of ["project", "subject", "session"]) {
      shown[label] = (await edit.locator(`[data-try-result] tr[data-label="${label}"] td.value`).textContent()).trim();
    }
    writeFileSync(path.join(env.PB_OUT, "try.json"), JSON.stringify(shown));
    assert.ok((await source.textContent()).includes(env.PB_RULE), "the rule is shown");
    // An unknown keyword: the API's words, and its line marked.
    await edit.getByLabel("Attributes", { exact: true }).fill("StudyDescription=Study-42\nNoSuchKeyword=1");
    await edit.getByRole("button", { name: "Try it" }).click();
    const attrError = edit.locator("#rcv-try-attributes-error");
    await attrError.waitFor({ timeout: TIMEOUT });
    assert.match(await attrError.textContent(), /NoSuchKeyword/);
    assert.equal(await edit.locator('.lines-editor[data-field="attributes"] .gutter span.bad').getAttribute("data-line"), "2");
    await accessible(page, "the edit-receiver dialog with Try it");
    await edit.getByRole("button", { name: "Save" }).click();
    await edit.waitFor({ state: "detached", timeout: TIMEOUT });

    // The site-wide rules: a bad line is named and marked as one types; nothing is saved.
    const site = page.getByRole("region", { name: "Site-wide routing rules" });
    const siteRules = site.getByLabel("Project rules", { exact: true });
    await siteRules.fill(env.PB_BAD_RULES);
    await expectLineError(site, "routing.project", "site-project-error", env.PB_BAD_SITE_RULE_MESSAGE, env.PB_BAD_RULE_LINE);
    await siteRules.fill("");
    await site.locator("#site-project-error").waitFor({ state: "detached", timeout: TIMEOUT });
    // Their Try it: a site rule as typed, with the receiver's saved rule before it.
    const siteSubject = site.getByLabel("Subject rules", { exact: true });
    await siteSubject.fill("(0010,0010):^([A-Z]+)");
    await site.getByLabel("Receiver", { exact: true }).selectOption({ label: `${env.PB_RCV_AE} (port ${env.PB_RCV_PORT})` });
    await site.getByLabel("Attributes", { exact: true }).fill(env.PB_TRY_ATTRIBUTES);
    await site.getByRole("button", { name: "Try it" }).click();
    const tried = site.locator("[data-try-result]");
    await tried.waitFor({ timeout: TIMEOUT });
    const cell = (label, what) => tried.locator(`tr[data-label="${label}"] td.${what}`);
    assert.equal((await cell("project", "value").textContent()).trim(), "42");
    assert.equal(await cell("project", "source").getAttribute("data-source"), "receiver_rule");
    assert.equal((await cell("subject", "value").textContent()).trim(), "DOE");
    assert.equal(await cell("subject", "source").getAttribute("data-source"), "site_rule");
    assert.equal(await cell("subject", "source").getAttribute("data-line"), "1");
    assert.equal(await tried.locator("[data-anonymize]").getAttribute("data-anonymize"), "true");
    await siteSubject.fill("");
    // An instance the archive does not hold: the API's words by the UID.
    await site.getByLabel("an instance of the archive").check();
    await site.getByLabel("SOP Instance UID", { exact: true }).fill(env.PB_UNKNOWN_UID);
    await site.getByRole("button", { name: "Try it" }).click();
    const unknown = site.locator("#site-try-uid-error");
    await unknown.waitFor({ timeout: TIMEOUT });
    assert.equal((await unknown.textContent()).trim(), env.PB_UNKNOWN_UID_MESSAGE);
    await accessible(page, "the receivers page");
  },

  // An account is made (a weak password refused in the API's words first); the last admin
  // cannot be demoted; the new user sees no administration; makes a token, shown once.
  async users(page) {
    page.on("dialog", (d) => d.accept());
    expectRefusal(page, 409, "/api/users/admin");
    await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
    await openPage(page, "Users", "Users");
    await page.getByRole("button", { name: "Add user" }).click();
    const dialog = page.getByRole("dialog", { name: "Add user" });
    await dialog.getByLabel("User name", { exact: true }).fill(env.PB_USER);
    await dialog.getByLabel("Role", { exact: true }).selectOption("user");
    await dialog.getByLabel("Password", { exact: true }).fill("short");
    await dialog.getByRole("button", { name: "Add user" }).click();
    const weak = dialog.locator("#user-password-error");
    await weak.waitFor({ timeout: TIMEOUT });
    assert.equal((await weak.textContent()).trim(), env.PB_WEAK_PASSWORD_MESSAGE);
    assert.equal(await dialog.getByLabel("Password", { exact: true }).getAttribute("aria-invalid"), "true");
    await accessible(page, "the add-user dialog");
    await dialog.getByLabel("Password", { exact: true }).fill(env.PB_USER_PASSWORD);
    await dialog.getByRole("button", { name: "Add user" }).click();
    await dialog.waitFor({ state: "detached", timeout: TIMEOUT });
    const row = page.locator(`tr[data-user="${env.PB_USER}"]`);
    await row.waitFor({ timeout: TIMEOUT });
    assert.equal(await row.getByLabel(`Role of ${env.PB_USER}`).inputValue(), "user");

    // The last admin stays: the API's refusal on the row, the role shown unchanged.
    await page.getByLabel("Role of admin").selectOption("user");
    const refused = page.locator('[data-row-error="admin"]');
    await refused.waitFor({ timeout: TIMEOUT });
    assert.equal((await refused.textContent()).trim(), env.PB_LAST_ADMIN_MESSAGE);
    await page.waitForFunction(() => document.querySelector('select[aria-label="Role of admin"]').value === "admin", null, {
      timeout: TIMEOUT,
    });
    await shot(page, "users");
    await accessible(page, "the users page");
    await page.getByRole("button", { name: "Log out" }).click();

    // The new account: no administration pages, receivers to read only.
    await logIn(page, env.PB_USER, env.PB_USER_PASSWORD);
    await page.getByRole("heading", { name: "PACS connections" }).waitFor({ timeout: TIMEOUT });
    const nav = page.getByRole("navigation", { name: "Pages" });
    assert.deepEqual(await nav.getByRole("link").allTextContents(), [
      "PACS connections",
      "Import",
      "Worklist",
      "Send",
      "Jobs",
      "Archive",
      "Receivers",
      "API tokens",
    ]);
    await openPage(page, "Receivers", "Receivers");
    await page.locator(`tr[data-ae="${env.PB_RCV_AE}"]`).waitFor({ timeout: TIMEOUT });
    for (const name of ["Add receiver", "Edit", "Delete", "Save site rules"]) {
      assert.equal(await page.getByRole("button", { name }).count(), 0, name);
    }
    const siteRules = page.getByRole("region", { name: "Site-wide routing rules" }).getByLabel("Project rules", { exact: true });
    assert.equal(await siteRules.getAttribute("readonly"), "");
    // An admin page asked for by its address shows the first page instead.
    await page.goto(url + "/#/users");
    await page.getByRole("heading", { name: "PACS connections" }).waitFor({ timeout: TIMEOUT });

    // A token: at most one's own role; its secret shown once, with a copy button.
    await openPage(page, "API tokens", "API tokens");
    const role = page.getByLabel("Role", { exact: true });
    assert.deepEqual(await role.locator("option").allTextContents(), ["user", "read-only"]);
    await page.getByLabel("Name", { exact: true }).fill(env.PB_TOKEN_NAME);
    await role.selectOption("read-only");
    await page.getByLabel("Expires after (days)", { exact: true }).fill("30");
    await page.getByRole("button", { name: "Create token" }).click();
    const made = page.getByRole("region", { name: `The token ${env.PB_TOKEN_NAME}` });
    await made.waitFor({ timeout: TIMEOUT });
    assert.match(await made.textContent(), /shown only this once/);
    const secret = await made.getByLabel("Secret", { exact: true }).inputValue();
    assert.match(secret, /^pbt_/);
    await made.getByRole("button", { name: "Copy" }).click();
    await made.getByRole("status").filter({ hasText: /Copied|Selected/ }).waitFor({ timeout: TIMEOUT });
    const tokenRow = page.locator(`tr[data-token-name="${env.PB_TOKEN_NAME}"]`);
    await tokenRow.waitFor({ timeout: TIMEOUT });
    assert.match(await tokenRow.textContent(), /read-only/);
    await shot(page, "tokens");
    await accessible(page, "the tokens page");
    writeFileSync(path.join(env.PB_OUT, "token.txt"), secret);
    // Once: gone when done, and not shown again after a reload.
    await made.getByRole("button", { name: "Done" }).click();
    await made.waitFor({ state: "detached", timeout: TIMEOUT });
    await page.reload();
    await tokenRow.waitFor({ timeout: TIMEOUT });
    assert.ok(!(await page.content()).includes(secret), "the secret is shown again");
  },

  // The user revokes the token made above.
  async revoke(page) {
    page.on("dialog", (d) => d.accept());
    await logIn(page, env.PB_USER, env.PB_USER_PASSWORD);
    await page.getByRole("heading", { name: "PACS connections" }).waitFor({ timeout: TIMEOUT });
    await openPage(page, "API tokens", "API tokens");
    const row = page.locator(`tr[data-token-name="${env.PB_TOKEN_NAME}"]`);
    await row.getByRole("button", { name: "Revoke" }).click();
    await row.waitFor({ state: "detached", timeout: TIMEOUT });
  },

  // The audit log shows the receiver made above, by admin, and the rule change as a diff.
  async audit(page) {
    await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
    await openPage(page, "Audit", "Audit log");
    await page.getByLabel("Target type", { exact: true }).selectOption("receiver");
    await page.getByRole("button", { name: "Show" }).click();
    // The rows shown are the answer to this filter (the last answer stays until the new one).
    await page.locator('section[data-query="limit=100&target_type=receiver"][aria-busy="false"]').waitFor({ timeout: TIMEOUT });
    const created = page.locator(`tr[data-action="receiver.create"][data-target="${env.PB_RCV_ID}"]`);
    await created.waitFor({ timeout: TIMEOUT });
    assert.equal((await created.locator("td.actor").textContent()).trim(), "admin");
    assert.match(await created.textContent(), /created \(\d+ fields\)/);
    const updated = page.locator(`tr[data-action="receiver.update"][data-target="${env.PB_RCV_ID}"]`);
    const diff = updated.locator('li[data-diff="routing.project"]');
    await diff.waitFor({ timeout: TIMEOUT });
    assert.equal((await diff.locator("ins").textContent()).trim(), env.PB_RULE);
    // Only receivers are listed now.
    const types = await page.locator("tbody tr td:nth-child(4) .muted").allTextContents();
    assert.ok(types.length > 0 && types.every((t) => t.trim() === "receiver"), types.join(","));
    await shot(page, "audit");
    await accessible(page, "the audit page");
    // Since: nothing is newer than a time to come.
    await page.getByLabel("Since", { exact: true }).fill("2099-01-01T00:00");
    await page.getByRole("button", { name: "Show" }).click();
    await page.getByText("No entry.").waitFor({ timeout: TIMEOUT });
    assert.equal(await created.count(), 0);
  },
};

await runScenarios(scenarios);
