// Browser scenarios of the series viewer (#/viewer/{study}/{series}[/{image}]). Run by
// tests/e2e/test_ui_viewer.py, which stores a CT series and a series with an instance without
// pixel data, and passes, in the environment (besides lib.mjs's): PB_VIEWER_STUDY,
// PB_VIEWER_SERIES, PB_VIEWER_SLOTS (JSON: the images the viewer must show, in order, each
// {sop, frame, frames, instance, slice}, worked out from the files by DCMTK), PB_NOIMAGE_SERIES
// and PB_NOIMAGE_SOP (its second instance has no pixel data), PB_READER / PB_READER_PASSWORD
// (a read-only account).
// Usage: node ui/tests/viewer.mjs SCENARIO ... ; exit 0 when every scenario held.
import assert from "node:assert/strict";

import { accessible, env, expectRefusal, logIn, runScenarios, shot, TIMEOUT, url } from "./lib.mjs";

const slots = JSON.parse(env.PB_VIEWER_SLOTS || "[]");
const study = env.PB_VIEWER_STUDY;
const series = env.PB_VIEWER_SERIES;
const n = slots.length;
const framePath = (s, ser = series) => `/dicom-web/studies/${study}/series/${ser}/instances/${s.sop}/frames/${s.frame}/rendered`;

// Waits until the image shown (loaded) is image i (from 0) of the series, asked with the window
// `win` ("C,W", or null: without a window parameter), and checks what the page says about it.
async function showsImage(page, i, win = null) {
  const s = slots[i];
  await page
    .waitForFunction(
      ([path, w]) => {
        const img = document.querySelector(".stage img");
        if (!img || !img.complete || !img.naturalWidth) return false;
        const u = new URL(img.src);
        return u.pathname === path && u.searchParams.get("window") === w;
      },
      [framePath(s), win],
      { timeout: TIMEOUT },
    )
    .catch(async (e) => {
      const src = await page.locator(".stage img").getAttribute("src").catch(() => "(no image)");
      throw new Error(`image ${i + 1} (${framePath(s)}, window ${win}) not shown; shown: ${src}\n${e.message}`);
    });
  const field = (name) => page.locator(`[data-field="${name}"]`).textContent();
  assert.equal(await field("instance"), String(s.instance), `instance number of image ${i + 1}`);
  assert.equal(await field("position"), `${i + 1} / ${n}`);
  assert.equal(await field("image"), `${i + 1} / ${n}`);
  assert.equal(await field("slice-location"), `${s.slice} mm`);
  if (s.frames > 1) assert.equal(await field("frame"), `${s.frame} / ${s.frames}`);
  else assert.equal(await page.locator('[data-field="frame"]').count(), 0);
  // Drawn at its own size (a frame: Rows of the multi-frame instance), unless larger than the
  // stage: then to fit the viewport asked for, aspect kept.
  const img = page.locator(".stage img");
  const src = new URL(await img.getAttribute("src"), url);
  const [w, h] = await img.evaluate((el) => [el.naturalWidth, el.naturalHeight]);
  const viewport = src.searchParams.get("viewport");
  if (!viewport) {
    assert.deepEqual([w, h], [s.columns, s.rows], `size of image ${i + 1}`);
  } else {
    const [vw, vh] = viewport.split(",").map(Number);
    assert.ok(s.columns > vw || s.rows > vh, `image ${i + 1} (${s.columns} x ${s.rows}) fits ${viewport}: asked smaller`);
    assert.ok(w <= vw && h <= vh && (w === vw || h === vh), `image ${i + 1}: ${w} x ${h} to fit ${viewport}`);
    assert.ok(Math.abs(w / h - s.columns / s.rows) < 0.02, `image ${i + 1}: ${w} x ${h}, aspect of ${s.columns} x ${s.rows}`);
  }
  const alt = await page.locator(".stage img").getAttribute("alt");
  assert.match(alt, new RegExp(`^Image ${i + 1} of ${n}: instance ${s.instance}`));
  assert.equal(await page.getByRole("slider", { name: "Image" }).inputValue(), String(i + 1));
  return page.locator(".stage img").getAttribute("src");
}

async function windowText(page) {
  return page.locator('[data-field="window"]').textContent();
}

// The rendered images the page asked for, as paths with their query.
function recordRequests(page) {
  const asked = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname.endsWith("/rendered")) asked.push(u.pathname + u.search);
  });
  return asked;
}

async function until(what, predicate) {
  const deadline = Date.now() + TIMEOUT;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const scenarios = {
  // From the archive to the viewer; scrolling by keyboard, wheel and slider through every image
  // (the frames of the multi-frame instance included); the address names the image; preloading;
  // the window by preset, drag and typing; axe-core.
  async viewer(page) {
    assert.ok(n >= 6, "the test gives a series of several images");
    const asked = recordRequests(page);
    // The other series' thumbnail is its middle instance, the one without an image: the
    // archive page's card gets 422 for it.
    expectRefusal(page, 422, "/thumbnail");
    await logIn(page, "admin", env.PB_ADMIN_PASSWORD);
    await page.getByRole("link", { name: "Archive" }).click();
    await page.getByRole("button", { name: "By study" }).click();
    await page.getByRole("button", { name: "VIEWER^CT" }).click();
    const card = page.locator(`li[data-series="${series}"]`);
    await card.waitFor({ timeout: TIMEOUT });
    await card.getByRole("link", { name: "View series 1" }).click();
    await page.getByRole("heading", { name: /^Viewer: VIEWER\^CT · viewer axial/ }).waitFor({ timeout: TIMEOUT });
    assert.ok(page.url().includes(`#/viewer/${study}/${series}`), page.url());
    // The first image, with the file's own window (no window parameter).
    const first = await showsImage(page, 0, null);
    assert.doesNotMatch(first, /viewport=/, "a small image is asked for at its own size");
    const field = (name) => page.locator(`[data-field="${name}"]`).textContent();
    assert.equal(await field("patient-name"), "VIEWER^CT");
    assert.equal(await field("patient-id"), "VIEW1");
    assert.equal(await field("study-date"), "2024-03-21");
    assert.equal(await field("modality"), "CT");
    assert.equal(await field("series"), "#1 viewer axial");
    assert.match(await field("position-patient"), /^-120, -110\.5, -?[\d.]+ mm$/);
    assert.equal(await windowText(page), "default: C 1500 / W 3000 (the file's)");
    // The next images are asked for ahead, with the same parameters.
    const query = first.slice(first.indexOf("?"));
    for (const s of slots.slice(1, 4)) {
      await until(`image of instance ${s.instance} frame ${s.frame} loaded ahead`, () =>
        asked.includes(framePath(s) + query),
      );
    }

    // The keyboard, from the image: every image in turn.
    await page.getByRole("group", { name: "Image display" }).focus();
    for (let i = 1; i < n; i++) {
      await page.keyboard.press("ArrowDown");
      await showsImage(page, i);
    }
    // An image loaded ahead was not asked for again when shown.
    assert.equal(asked.filter((a) => a === framePath(slots[1]) + query).length, 1, asked.join("\n"));
    await page.keyboard.press("Home");
    await showsImage(page, 0);
    await page.keyboard.press("PageDown");
    await showsImage(page, Math.min(10, n - 1));
    await page.keyboard.press("PageUp");
    await showsImage(page, 0);
    await page.keyboard.press("End");
    assert.match(await showsImage(page, n - 1), /[?&]viewport=\d+,\d+/, "the large image is asked for at the stage's size");
    await page.keyboard.press("ArrowUp");
    await showsImage(page, n - 2);
    await page.keyboard.press("ArrowLeft");
    await showsImage(page, n - 3);
    await page.keyboard.press("Home");
    await showsImage(page, 0);

    // The wheel over the image, down then up: through the frames of the multi-frame instance.
    const box = await page.locator(".stage").boundingBox();
    const cx = Math.round(box.x + box.width / 2);
    const cy = Math.round(box.y + box.height / 2);
    await page.mouse.move(cx, cy);
    const multi = slots.findIndex((s) => s.frames > 1);
    assert.ok(multi > 0, "a multi-frame instance in the series");
    for (let i = 1; i <= multi + 2; i++) {
      await page.mouse.wheel(0, 100);
      await showsImage(page, i);
    }
    await page.mouse.wheel(0, -100);
    await showsImage(page, multi + 1);
    // The slider and the buttons beside it.
    await page.getByRole("slider", { name: "Image" }).fill(String(n));
    await showsImage(page, n - 1);
    await page.getByRole("button", { name: "Previous image" }).click();
    await showsImage(page, n - 2);
    await page.getByRole("button", { name: "Next image" }).click();
    await showsImage(page, n - 1);
    assert.equal(await page.getByRole("button", { name: "Next image" }).isDisabled(), true);

    // The address names the image shown: a reload (or the link) opens it again.
    const middle = multi + 1; // the second frame of the multi-frame instance
    await page.getByRole("slider", { name: "Image" }).fill(String(middle + 1));
    await showsImage(page, middle);
    assert.ok(page.url().endsWith(`#/viewer/${study}/${series}/${middle + 1}`), page.url());
    await page.reload();
    await showsImage(page, middle);
    await shot(page, "viewer");

    // Presets: the lung window is asked for as window=-600,1500.
    await page.getByRole("button", { name: /^Lung/ }).click();
    assert.equal(await page.getByRole("button", { name: /^Lung/ }).getAttribute("aria-pressed"), "true");
    const lung = await showsImage(page, middle, "-600,1500");
    assert.ok(lung.includes("window=-600,1500"), lung);
    assert.ok(asked.some((a) => a.startsWith(framePath(slots[middle]) + "?window=-600,1500&")), asked.join("\n"));
    assert.equal(await windowText(page), "C -600 / W 1500 (lung)");
    // Scrolling keeps the window.
    await page.getByRole("group", { name: "Image display" }).focus();
    await page.keyboard.press("ArrowDown");
    await showsImage(page, middle + 1, "-600,1500");
    await page.keyboard.press("ArrowUp");
    await showsImage(page, middle, "-600,1500");
    await shot(page, "viewer-lung");

    // Dragging with the right button: right widens, down raises the center. The figures follow
    // the mouse; the image is asked for once the mouse rests (not at every move), and shown
    // with the figures shown.
    const before = asked.length;
    // When the page handled each move: on a loaded machine the moves may come so far apart that
    // the mouse rested between them, and each such rest may rightly ask for the image.
    await page.evaluate(() => {
      window.moveTimes = [];
      window.addEventListener("pointermove", () => window.moveTimes.push(performance.now()), true);
    });
    await page.mouse.move(cx, cy);
    await page.mouse.down({ button: "right" });
    await page.mouse.move(cx + 80, cy + 40, { steps: 16 });
    await page.mouse.up({ button: "right" });
    const moveTimes = await page.evaluate(() => window.moveTimes);
    const rests = moveTimes.slice(1).filter((t, i) => t - moveTimes[i] >= 100).length;
    const dragged = /^C (-?\d+) \/ W (\d+)$/.exec(await windowText(page));
    assert.ok(dragged, await windowText(page));
    const [c, w] = [Number(dragged[1]), Number(dragged[2])];
    assert.ok(c > -600 && w > 1500, `after the drag: C ${c} W ${w}`);
    await showsImage(page, middle, `${c},${w}`);
    const during = asked.slice(before).filter((a) => a.startsWith(framePath(slots[middle]) + "?"));
    assert.ok(moveTimes.length >= 16, `${moveTimes.length} moves seen`);
    assert.ok(
      during.length <= 2 + rests,
      `the image of a drag of 16 moves (${rests} rests of 100 ms or more) was asked ${during.length} times:\n${during.join("\n")}`,
    );
    assert.equal(await page.getByRole("button", { name: /^Lung/ }).getAttribute("aria-pressed"), "false");
    // Shift and the left button: to the left narrows.
    await page.keyboard.down("Shift");
    await page.mouse.move(cx, cy);
    await page.mouse.down();
    await page.mouse.move(cx - 60, cy, { steps: 6 });
    await page.mouse.up();
    await page.keyboard.up("Shift");
    const narrowed = /^C (-?\d+) \/ W (\d+)$/.exec(await windowText(page));
    assert.ok(narrowed && Number(narrowed[1]) === c && Number(narrowed[2]) < w, await windowText(page));
    await showsImage(page, middle, `${c},${narrowed[2]}`);
    // The left button alone does not change it.
    await page.mouse.move(cx, cy);
    await page.mouse.down();
    await page.mouse.move(cx + 100, cy + 100, { steps: 4 });
    await page.mouse.up();
    assert.equal(await windowText(page), `C ${c} / W ${narrowed[2]}`);

    // Typed, with the keyboard. The server is made slow to answer: until the new image has
    // loaded, the last one stays shown (the figures already say the new window).
    let release;
    const held = new Promise((r) => (release = r));
    const slow = (u) => u.pathname.endsWith("/rendered") && u.searchParams.get("window") === "50,350";
    await page.route(slow, async (route) => {
      await held;
      await route.continue();
    });
    await page.getByLabel("Center", { exact: true }).fill("50");
    await page.getByLabel("Width", { exact: true }).fill("350");
    await page.getByLabel("Width", { exact: true }).press("Enter");
    await page.locator('.stage[aria-busy="true"]').waitFor({ timeout: TIMEOUT });
    assert.equal(await windowText(page), "C 50 / W 350");
    const kept = new URL(await page.locator(".stage img").getAttribute("src"), url);
    assert.equal(kept.searchParams.get("window"), `${c},${narrowed[2]}`, "the last image stays until the next loads");
    release();
    await showsImage(page, middle, "50,350");
    await page.unroute(slow);
    // Default: the file's own window again, without a window parameter.
    await page.getByRole("button", { name: "Default" }).click();
    await showsImage(page, middle, null);
    assert.equal(await windowText(page), "default: C 1500 / W 3000 (the file's)");
    await accessible(page, "the viewer");
  },

  // The server's refusals in the page, for a read-only account: a series the archive lacks
  // (404), an instance without an image (406) among images, an address that names no series.
  async errors(page) {
    expectRefusal(page, 404, "/dicom-web/");
    expectRefusal(page, 406, "/dicom-web/");
    await logIn(page, env.PB_READER, env.PB_READER_PASSWORD);
    await page.getByRole("link", { name: "Archive" }).waitFor({ timeout: TIMEOUT });
    await page.goto(`${url}/#/viewer/${study}/1.2.3.4.5.6`);
    const alert = page.getByRole("alert");
    await alert.filter({ hasText: "no such SeriesInstanceUID in the archive" }).waitFor({ timeout: TIMEOUT });
    assert.match(await alert.textContent(), /^The series cannot be shown: /);
    await accessible(page, "the viewer of a series the archive lacks");

    await page.goto(`${url}/#/viewer/${study}/${env.PB_NOIMAGE_SERIES}`);
    await page.locator('[data-field="position"]').filter({ hasText: "1 / 2" }).waitFor({ timeout: TIMEOUT });
    await page.waitForFunction(() => document.querySelector(".stage img")?.naturalWidth > 0, null, { timeout: TIMEOUT });
    await page.getByRole("group", { name: "Image display" }).focus();
    await page.keyboard.press("ArrowDown");
    const noImage = page.getByRole("alert").filter({ hasText: "the instance has no image" });
    await noImage.waitFor({ timeout: TIMEOUT });
    const said = await noImage.textContent();
    assert.match(said, /^Image 2 \(instance 2\): the server answered HTTP 406: /, said);
    assert.ok(said.includes(env.PB_NOIMAGE_SOP), said);
    assert.equal(await page.locator(".stage img").count(), 0, "no image stays shown for it");
    assert.equal(await page.locator('[data-field="instance"]').textContent(), "2");
    await shot(page, "viewer-error");
    await accessible(page, "the viewer with an instance without an image");
    await page.keyboard.press("ArrowUp");
    await page.waitForFunction(() => document.querySelector(".stage img")?.naturalWidth > 0, null, { timeout: TIMEOUT });
    await noImage.waitFor({ state: "detached", timeout: TIMEOUT });
    assert.equal(await page.locator('[data-field="instance"]').textContent(), "1");

    await page.goto(`${url}/#/viewer/nothing`);
    await page.getByRole("alert").filter({ hasText: "This address names no series" }).waitFor({ timeout: TIMEOUT });
  },
};

await runScenarios(scenarios);
