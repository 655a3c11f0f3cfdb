"""Notebook 04's optimizer explorer in a real JupyterLab, as a student uses it.

JupyterLab runs on a free loopback port with a token, on a copy of notebook 04 in a temporary
folder (the repository's notebooks are never touched). The test opens the notebook, checks
what the stored output of the explorer cell (tagged ``explorer``) shows before anything runs,
runs only the imports that cell needs and the cell itself, changes the optimizer dropdown and
the LR slider, and checks the picture changes each time. The server is stopped by its PID.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser_support import ROOT, SCREENSHOTS, WIDGET_REPRS

NOTEBOOK = Path(os.environ.get("COURSE_LAB_NOTEBOOK", ROOT / "notebooks" / "04_optimizers.ipynb"))
SETTINGS = {  # no network from the lab: no news, no update check, no extension manager
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
    # every cell in the DOM, so the test finds the explorer cell by its index
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def explorer_cell(cells: list[dict]) -> tuple[int, str]:
    """Index of the cell tagged ``explorer`` and the import statements it needs, from earlier cells."""
    tagged = [i for i, c in enumerate(cells) if "explorer" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"notebook 04 needs exactly one cell tagged `explorer`, found {len(tagged)}"
    index = tagged[0]
    used = {n.id for n in ast.walk(ast.parse("".join(cells[index]["source"]))) if isinstance(n, ast.Name)}
    imports = []
    for cell in cells[:index]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.parse("".join(cell["source"])).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                bound = {(a.asname or a.name).split(".")[0] for a in node.names}
                if bound & used:
                    imports.append(ast.unparse(node))
    return index, "\n".join(imports)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a copy of notebook 04; yields (base URL, token); stopped by PID afterwards."""
    folder = tmp_path_factory.mktemp("lab")
    work, settings = folder / "work", folder / "settings"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    for name, values in SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(folder / "run")}
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
               "--NotebookNotary.db_file=:memory:",  # a notebook nobody ran here: untrusted, as for a student
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = open(folder / "lab.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start: " + (folder / "lab.log").read_text()[-2000:])
                time.sleep(0.3)
        yield base, token
    finally:
        server.terminate()  # by its PID: the server shuts its kernels down
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_explorer_responds_to_its_controls(browser_context, lab):
    base, token = lab
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    index, imports = explorer_cell(cells)
    assert "optimizer_explorer" in imports
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", wait_until="domcontentloaded")
        page.wait_for_function("() => window.jupyterapp && jupyterapp.shell.currentWidget"
                               " && jupyterapp.shell.currentWidget.content"
                               " && jupyterapp.shell.currentWidget.content.widgets.length > 0",
                               timeout=90_000)
        cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)
        assert "optimizer_explorer" in cell.locator(".jp-InputArea").inner_text()

        # a freshly opened notebook: the stored output is the sentence and picture, never a repr
        cell.scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOTS / "lab-04-explorer-stored.png")
        stored = cell.locator(".jp-OutputArea").inner_text(timeout=30_000)
        assert "run this cell in JupyterLab" in stored, f"stored output shows {stored[:200]!r}"
        assert not [r for r in WIDGET_REPRS if r in stored], stored[:200]

        # run only what the cell needs (its imports), then the cell itself
        status = page.evaluate("""async code => {
            const panel = jupyterapp.shell.currentWidget;
            await panel.sessionContext.ready;
            const reply = await panel.sessionContext.session.kernel.requestExecute({code}).done;
            return reply.content.status;
        }""", imports)
        assert status == "ok"
        page.evaluate(f"""async () => {{
            const panel = jupyterapp.shell.currentWidget;
            panel.content.activeCellIndex = {index};
            await jupyterapp.commands.execute('notebook:run-cell');
        }}""")
        image = cell.locator(".jp-OutputArea img.widget-image")
        image.wait_for(state="visible", timeout=60_000)

        def picture() -> tuple[str, bytes]:
            return image.get_attribute("src"), image.screenshot()

        def changes(before: tuple[str, bytes]) -> tuple[str, bytes]:
            page.wait_for_function("([img, src]) => img.src !== src", arg=[image.element_handle(), before[0]],
                                   timeout=30_000)
            page.wait_for_timeout(200)  # the new blob decodes
            after = picture()
            assert after[1] != before[1], "the picture did not change"
            return after

        first = picture()
        cell.scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOTS / "lab-04-explorer-start.png")
        optimizer = cell.locator(".widget-dropdown", has_text="optimizer").locator("select")
        optimizer.select_option("Adam")
        second = changes(first)

        readout = cell.locator(".widget-hslider", has_text="lr").first.locator(".widget-readout")
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("0.3")
        page.keyboard.press("Enter")
        changes(second)
        assert readout.inner_text().strip() in ("0.3", "0.300")
        page.screenshot(path=SCREENSHOTS / "lab-04-explorer-changed.png")
        assert not errors, f"page errors in JupyterLab: {errors}"
    finally:
        page.close()
