"""What the browser tests share: whether they can run here, and running one scenario file of
ui/tests/ (playwright-core driving Debian's Chromium) against a server started by the test.

Screenshots go to a temp folder, or to $PB_SCREENSHOTS_DIR when set (the README's come from:
PB_SCREENSHOTS_DIR=docs/screenshots)."""
import os
import shutil
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[2]


def ui_ready():
    """Why the browser tests cannot run here, or None."""
    if not (ROOT / "ui" / "node_modules" / "playwright-core").is_dir():
        return "ui/node_modules is missing: run make ui (npm ci)"
    if not shutil.which("node"):
        return "node is missing"
    if not Path("/usr/bin/chromium").exists():
        return "Debian's chromium is missing (scripts/install-deps.sh --test)"
    return None


def require_ui():
    """Raises (fails the suite) when the browser tests cannot run here: they are part of make test."""
    missing = ui_ready()
    if missing:
        raise AssertionError("the browser tests cannot run: " + missing)


def screenshots_dir(tmp):
    shots = Path(os.environ.get("PB_SCREENSHOTS_DIR") or (Path(tmp) / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def run_scenarios(test, server, script, names, env, shots, timeout=300):
    """Runs ui/tests/SCRIPT with the scenarios NAMES; asserts each held. ENV adds to what every
    scenario file gets (PB_URL, PB_ADMIN_PASSWORD, PB_SCREENSHOTS)."""
    full = {"PB_URL": server.url, "PB_ADMIN_PASSWORD": server.admin_password,
            "PB_SCREENSHOTS": str(shots)}
    full.update(env)
    cp = harness.run_tool(["node", str(ROOT / "ui" / "tests" / script)] + list(names),
                          timeout=timeout, env=full, cwd=str(ROOT / "ui"))
    test.assertEqual(cp.returncode, 0, harness.proc_output(cp))
    for name in names:
        test.assertIn("ok    %s" % name, cp.stdout)
