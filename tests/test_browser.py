"""The notebooks in a real browser: JupyterLab in headless Chromium, driven by Playwright.

03_adversarial_unlearning: run all cells and watch the live plot redraw while Algorithm 1 runs.
05_explorer, in a second browser while 03 runs (on the testbed, Fashion-MNIST with the cpu profile as a
student opens it, with the grid cut to 2 α × 2 β, 0 and the course's tuned value of each, at 60
iterations rather than the tuned count, so that CI can afford it): run all cells, read the explorer's numbers, move the α
and β sliders and check that the table, the Avg. Disparity readout, the marks of the current α and β
and Retrain's reference lines follow the stored grid point (computed again here from the same
store), then press "run fresh unlearning" and wait for its table beside the grid point it matches.  The two
notebooks run side by side (one kernel thread each), so the browser part takes as long as the
longer of the two.
04_evaluation, afterwards, on the same store (θ0, the attacker and Retrain already there): run all
cells, which computes every registered method, and read its two figures as the page draws them.

Setup: while the two pages load, 05_explorer's cells up to the explorer run once in a thread of
this process against the scratch store, so the browser only loads stored grid points.  Needs Debian's
``chromium`` (or ``ADVUNLEARN_CHROMIUM`` naming another Chromium binary) and the ``playwright``
package; see docs/browser-test.md.
Screenshots go to ``test-output/browser/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
SHOTS = REPO / "test-output" / "browser"
# ADVUNLEARN_SHOTS_TO_DOCS=1 also copies the screenshots of 03, 04 and 05 to docs/img/ (the README's pictures)
DOCS_IMG = REPO / "docs" / "img"
CHROMIUM = os.environ.get("ADVUNLEARN_CHROMIUM", "/usr/bin/chromium")
# headless, and no background connections (the CI machines' network is closed: they would be refused)
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
# 03 in the browser: a short run with a record (and a redraw) every 2 iterations: 9 figures
LIVE_ITERATIONS, LIVE_RECORD_EVERY = 16, 2
# 05 in the browser: the testbed's grid cut to 0 and the course's (tuned) value of α and of β (the
# notebook's default adds a strong multiple of each), where the explorer opens; 60 iterations per point


def _course_values() -> tuple[float, float]:
    from advunlearn.experiments.profiles import get_profile

    c = get_profile("cpu", "fashion-mnist").unlearn_for("random", 0.0)
    return float(c.alpha), float(c.beta)


EXPLORER_ALPHAS, EXPLORER_BETAS = [0.0, _course_values()[0]], [0.0, _course_values()[1]]
EXPLORER_ITERATIONS = 60
EXPLORER_NB = "05_explorer_2x2.ipynb"
PREPOPULATE_S = 3600  # filling an empty store on a loaded 2-core machine
SERVER_START_S = 90
RUN_ALL_S = 240  # one notebook's Run All (the 2-core CI machines are shared)
# 04's Run All after 03 and 05: θ0, the attacker and Retrain are stored, every other method is computed,
# in two single-thread worker processes (its ``workers`` parameter: "auto" gives one under ADVUNLEARN_THREADS=1)
EVALUATION_NB, EVALUATION_S = "04_evaluation_2w.ipynb", 1200
FRESH_S = 240  # the fresh-run button (fresh_iterations of Algorithm 1)
UI_S = 30  # a widget or figure reacting to a key press
TIMES: dict[str, float] = {}

pytestmark = pytest.mark.timeout(PREPOPULATE_S + 1200)


def _chromium_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[dev]'"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"no Chromium at {CHROMIUM}: apt-get install chromium, or set ADVUNLEARN_CHROMIUM "
                "to a Chromium binary (never a downloaded one is needed)")
    return None


if os.environ.get("ADVUNLEARN_SKIP_BROWSER") == "1":  # an explicit opt-out only; a missing browser fails
    pytestmark = [pytestmark, pytest.mark.skip(reason="ADVUNLEARN_SKIP_BROWSER=1")]


# ---- helpers ------------------------------------------------------------------------------------
def _keep_shot(path: Path) -> None:
    """Copy a screenshot to docs/img/ when ADVUNLEARN_SHOTS_TO_DOCS=1 (never otherwise: a test run leaves the tree clean)."""
    if os.environ.get("ADVUNLEARN_SHOTS_TO_DOCS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / f"browser-{path.name}")


def _took(what: str, t0: float) -> None:
    TIMES[what] = time.perf_counter() - t0
    print(f"\n[browser test] {what}: {TIMES[what]:.1f}s", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET"):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@contextlib.contextmanager
def _environ(**env):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _without(name: str):
    old = os.environ.pop(name, None)
    try:
        yield
    finally:
        if old is not None:
            os.environ[name] = old


def _code_cell_index(nb, needle: str) -> int:
    """Index (among all cells, as JupyterLab lays them out) of the one code cell containing ``needle``."""
    hits = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and needle in c.source]
    assert len(hits) == 1, f"expected one code cell containing {needle!r}, found cells {hits}"
    return hits[0]


# ---- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A scratch copy of notebooks/ (JupyterLab's root), the store and JupyterLab's own folders."""
    missing = _chromium_missing()
    if missing:
        pytest.fail(missing)
    root = tmp_path_factory.mktemp("browser")
    nbdir = root / "notebooks"
    shutil.copytree(NOTEBOOKS, nbdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    # the same scratch store as nbval when the session has one (conftest.py), so `make test` fills it once
    store = Path(os.environ.get("ADVUNLEARN_STORE") or root / "store")
    settings = root / "lab-settings"
    # every cell in the DOM (no virtual scrolling), the notebook's kernel started without a dialog,
    # and no news/update fetches on a closed network
    for rel, value in (("@jupyterlab/notebook-extension/tracker.jupyterlab-settings",
                        {"windowingMode": "none", "autoStartDefaultKernel": True}),
                       ("@jupyterlab/apputils-extension/notification.jupyterlab-settings",
                        {"fetchNews": "false", "checkForUpdates": False})):
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(value))
    # ADVUNLEARN_THREADS=1: the two notebooks' kernels run side by side on the CI machines' 2 cores.
    # Not fast mode: the notebooks run on the testbed, as a student's do (only their sizes are cut).
    env = {**{k: v for k, v in os.environ.items() if k != "ADVUNLEARN_FAST"},
           "ADVUNLEARN_STORE": str(store), "ADVUNLEARN_PROGRESS": "0",
           "ADVUNLEARN_THREADS": "1",
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(root / "lab-workspaces"),
           "JUPYTER_CONFIG_DIR": str(root / "jupyter-config"), "IPYTHONDIR": str(root / "ipython"),
           "JUPYTER_RUNTIME_DIR": str(root / "jupyter-runtime"), "PYTHONUNBUFFERED": "1"}
    return {"root": root, "nbdir": nbdir, "store": store, "env": env}


def _prepopulate(work) -> dict:
    """Fill the store: 05's code cells up to the explorer (parameters, setup, Retrain, the grid), run here.

    Run in this process with the kernel's environment, the notebook's own ``compute_grid`` call
    computes the missing grid points (θ0 and the attacker that 03 also uses come with them) and
    loads the stored ones; its grid is the expected one.  (Not papermill: nbclient once hung for
    good on 05's widget cell, with the kernel idle.)  A failure is kept, not raised: the explorer
    test reports it, the live-plot test still runs.
    """
    import nbformat

    t0 = time.perf_counter()
    nb = nbformat.read(work["nbdir"] / EXPLORER_NB, as_version=4)
    upto = _code_cell_index(nb, "Explorer(")
    ns: dict = {}
    import torch

    # the kernels compute with one thread, and the thread count is part of every store key: the grid
    # stored here must be the one the browser's kernel reads back, not a two-thread twin of it
    threads = torch.get_num_threads()
    torch.set_num_threads(int(work["env"]["ADVUNLEARN_THREADS"]))
    try:
        with _environ(**{k: work["env"][k] for k in ("ADVUNLEARN_STORE", "ADVUNLEARN_PROGRESS", "ADVUNLEARN_THREADS")}), \
                _without("ADVUNLEARN_FAST"):
            for i, cell in enumerate(nb.cells[:upto]):
                if cell.cell_type == "code":
                    exec(compile(cell.source, f"05_explorer.ipynb cell {i}", "exec"), ns)
        g = ns["grid"]
    except Exception:  # noqa: BLE001 - reported by the explorer test
        return {"error": "05_explorer's cells up to the explorer failed:\n" + traceback.format_exc()}
    finally:
        torch.set_num_threads(threads)
        _took("fixture: 05 cells up to the explorer, in process (fills the store)", t0)
    return {"error": None, "grid": g, "dataset": ns["dataset"], "profile": ns["profile"], "fast": ns["FAST"],
            "alphas": sorted(map(float, ns["alphas"])),
            "betas": sorted(map(float, ns["betas"])), "retrain": ns["retrain"]}


@pytest.fixture(scope="module")
def prepopulated(pages):
    """What :func:`_prepopulate` gave (run by ``pages`` while the browser pages load)."""
    return pages["prepopulated"]


@pytest.fixture(scope="module")
def grid(prepopulated):
    """The expected grid: (scheme, α, β) -> point, as the notebook's compute_grid returned it here."""
    if prepopulated["error"]:
        pytest.fail(prepopulated["error"])
    return prepopulated


@pytest.fixture(scope="module")
def server(work):
    """JupyterLab on a free localhost port; kernels shut down and the process group killed afterwards."""
    t0 = time.perf_counter()
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    log = work["root"] / "jupyterlab.log"
    fh = open(log, "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--allow-root",
                             "--ServerApp.ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
                             f"--ServerApp.token={token}", f"--ServerApp.root_dir={work['nbdir']}",
                             "--ServerApp.disable_check_xsrf=True",
                             # a safety net should this process die without its cleanup: idle kernels
                             # are culled and the server then exits by itself
                             "--MappingKernelManager.cull_idle_timeout=600", "--MappingKernelManager.cull_interval=60",
                             "--ServerApp.shutdown_no_activity_timeout=900"],
                            env=work["env"], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    # SIGTERM (a cancelled CI job) stops the session like Ctrl-C: pytest then runs the cleanup below
    # instead of orphaning the server and its kernels
    old_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{_tail(log)}")
            try:
                _api(base, token, "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within {SERVER_START_S}s:\n{_tail(log)}")
                time.sleep(0.2)
        _took("browser: server start", t0)
        yield {"base": base, "token": token, "log": log}
    finally:
        t1 = time.perf_counter()
        # every kernel shut down through the REST API, side by side (each DELETE waits for its kernel)
        with contextlib.suppress(Exception):
            import concurrent.futures

            kernels = _api(base, token, "/api/kernels")
            with concurrent.futures.ThreadPoolExecutor(max(1, len(kernels))) as pool:
                list(pool.map(lambda k: _api(base, token, f"/api/kernels/{k['id']}", "DELETE"), kernels))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        fh.close()
        signal.signal(signal.SIGTERM, old_term)
        _took("cleanup: kernels and server stopped", t1)
        print("\ntimes (s): " + ", ".join(f"{k} {v:.1f}" for k, v in TIMES.items()))


@pytest.fixture(scope="module")
def playwright_(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


class LabPage:
    """One notebook in JupyterLab in a headless Chromium of its own, in its own workspace.

    One browser per notebook: of two pages in one headless Chromium, only the one being driven drew
    its outputs, and the live plot must draw while the test works in the explorer's page.
    ``close()`` closes the browser; the server fixture shuts the kernels down, all at once.
    """

    def __init__(self, pw, server, name: str, height: int = 1000):
        self.server, self.name = server, name
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        # ``height``: a figure taller than JupyterLab's notebook panel is cut in its screenshot, so the
        # pages whose figures are screenshot are as tall as those figures
        self.page = self.browser.new_page(viewport={"width": 1400, "height": height})
        self.page.set_default_timeout(UI_S * 1000)

    def goto(self) -> None:
        """Start loading JupyterLab with the notebook (returns once the page has loaded, before the kernel)."""
        ws = re.sub(r"\W", "", self.name)
        self.page.goto(f"{self.server['base']}/lab/workspaces/{ws}/tree/{self.name}?token={self.server['token']}")

    def wait_ready(self):
        """Wait until the cells are shown and the notebook's kernel is idle, server side and in the page."""
        page, base, token = self.page, self.server["base"], self.server["token"]
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=SERVER_START_S * 1000)
        deadline = time.monotonic() + SERVER_START_S
        while not any(s["path"].endswith(self.name) and s["kernel"]["execution_state"] == "idle"
                      for s in _api(base, token, "/api/sessions")):
            assert time.monotonic() < deadline, f"no idle kernel for {self.name} after {SERVER_START_S}s"
            time.sleep(0.2)
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                               timeout=SERVER_START_S * 1000)
        return page

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.browser.close()


def _copy_with_params(work, src: str, dst: str, edits: list[tuple[str, str]]):
    """Write ``dst``, a copy of notebook ``src`` whose parameters cell has each ``(pattern, line)`` edit
    applied (the pattern must match exactly one line); returns the copy and its parameters cell."""
    import nbformat

    nb = nbformat.read(work["nbdir"] / src, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for pattern, line in edits:
        new, n = re.subn(pattern, line, params.source, flags=re.M)
        assert n == 1, f"{src}'s parameters cell has no line matching {pattern!r}:\n{params.source}"
        params.source = new
    nbformat.write(nb, work["nbdir"] / dst)
    return nb, params


def _short_03(work) -> tuple[str, int]:
    """A copy of 03 whose parameters ask for LIVE_ITERATIONS iterations, a record every LIVE_RECORD_EVERY;
    returns its name and the index of the live-plot cell."""
    name = "03_live_short.ipynb"
    nb, _ = _copy_with_params(work, "03_adversarial_unlearning.ipynb", name,
                              [(rf"^{key}: int = None\b", f"{key}: int = {value}")
                               for key, value in (("iterations", LIVE_ITERATIONS), ("record_every", LIVE_RECORD_EVERY))])
    return name, _code_cell_index(nb, "LivePlot(")


def _explorer_2x2(work) -> str:
    """A copy of 05 whose parameters cell asks for the EXPLORER_ALPHAS × EXPLORER_BETAS grid; its name."""
    _, params = _copy_with_params(work, "05_explorer.ipynb", EXPLORER_NB,
                                  [(rf"^{key}: list = \[[^\]]*\]", f"{key}: list = {value!r}")
                                   for key, value in (("alphas", EXPLORER_ALPHAS), ("betas", EXPLORER_BETAS))]
                                  + [(r"^iterations: int = \w+", f"iterations: int = {EXPLORER_ITERATIONS}")])
    assert re.search(r'^dataset: str = "fashion-mnist"', params.source, flags=re.M), "05's default is not the testbed"
    return EXPLORER_NB


@pytest.fixture(scope="module")
def pages(server, work, playwright_):
    """Both notebooks open side by side and running: the short 03 (a sampler watching its live-plot
    cell) and 05, each in its own browser.  While the two pages load and their kernels start,
    :func:`_prepopulate` fills the store in a thread of this process; once both are done, Run All is
    pressed in 03 and in 05.  The tests wait for the end of the run they check."""
    import threading

    t0 = time.perf_counter()
    name, idx = _short_03(work)
    explorer_name = _explorer_2x2(work)
    prepop: dict = {"error": "the store was not filled (interrupted)"}

    def fill():
        prepop.update(_prepopulate(work))

    filler = threading.Thread(target=fill, name="prepopulate", daemon=True)
    filler.start()
    nb03 = LabPage(playwright_, server, name, height=2400)
    nb05 = LabPage(playwright_, server, explorer_name, height=2400)
    try:
        nb03.goto()
        nb05.goto()
        nb03.wait_ready()
        nb05.wait_ready()
        _took("browser: 03 and 05 opened, kernels idle", t0)
        filler.join(PREPOPULATE_S)
        nb03.page.evaluate(_SAMPLER_JS, idx)
        start_run_all(nb03.page)
        start_run_all(nb05.page)
        _took("browser: store filled, Run All pressed in both", t0)
        yield {"03": nb03.page, "05": nb05.page, "idx": idx, "t0": t0, "prepopulated": prepop}
    finally:
        t1 = time.perf_counter()
        nb03.close()
        nb05.close()
        _took("cleanup: browsers closed", t1)


# ---- page actions -------------------------------------------------------------------------------
_PROMPTS_JS = """() => {
  const cells = [...document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-CodeCell')];
  const prompts = cells.map(c => (c.querySelector('.jp-InputPrompt') || {}).textContent || '');
  const running = prompts.some(p => p.includes('*'));
  const done = prompts.every(p => /\\[\\d+\\]/.test(p));
  if (window.__auSeenRunning && !running) return {done, prompts};
  return null;
}"""

_WATCH_JS = """() => { window.__auSeenRunning = false; clearInterval(window.__auWatch);
  window.__auWatch = setInterval(() => {
    if ([...document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-CodeCell .jp-InputPrompt')]
        .some(p => p.textContent.includes('*'))) window.__auSeenRunning = true; }, 50); }"""

_STDERR_JS = """() => [...document.querySelectorAll(
  '.jp-NotebookPanel .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
  .map(e => e.textContent)"""


def start_run_all(page) -> None:
    """Run > Run All Cells (returns at once; :func:`wait_run_all` waits for the end).  A watcher in
    the page notes that cells ran, so the end is recognised even if nobody polled meanwhile."""
    page.evaluate(_WATCH_JS)
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()


def wait_run_all(page, timeout_s: float = RUN_ALL_S) -> None:
    """Wait until every code cell has an execution count after :func:`start_run_all` (fail on an error)."""
    state = page.wait_for_function(_PROMPTS_JS, timeout=timeout_s * 1000, polling=200).json_value()
    page.evaluate("() => clearInterval(window.__auWatch)")
    if not state["done"]:
        errors = "\n".join(page.evaluate(_STDERR_JS))
        pytest.fail(f"Run All stopped before the end (prompts {state['prompts']}):\n{errors[-6000:]}")


def wait_text(locator, pattern: str, timeout_s: float = UI_S) -> str:
    """Wait until the first element of ``locator`` has text matching ``pattern``; return the text."""
    from playwright.sync_api import expect

    expect(locator.first).to_contain_text(re.compile(pattern), timeout=timeout_s * 1000)
    return (locator.first.text_content() or "").strip()


def _curve(values) -> list[float]:
    """A curve as floats; a missing value (None in JSON, NaN in the history: the record before step 1) as NaN."""
    return [float("nan") if v is None else float(v) for v in values]


def numbers(box, prefix: str = "") -> dict[str, str]:
    return {k: box.locator(f".au-{prefix}{k}").inner_text().strip() for k in ("UA", "RA", "TA", "MIA_efficacy")}


def formatted(point: dict) -> dict[str, str]:
    return {k: f"{point[k]:.2f}" for k in ("UA", "RA", "TA", "MIA_efficacy")}


_FIG_JS = """el => { const gd = el.querySelector('.js-plotly-plot');
  return gd && gd.data ? {title: (gd.layout.title && gd.layout.title.text) || '',
                          traces: gd.data.map(t => ({name: t.name || '', x: Array.from(t.x || []), y: Array.from(t.y || [])})),
                          shapes: (gd.layout.shapes || []).map(s => ({xref: s.xref, x0: s.x0, x1: s.x1, y0: s.y0, y1: s.y1}))}
                       : null; }"""


def _marks(fig) -> dict:
    """The current-α and current-β marks (vertical lines) and Retrain's reference values (horizontal lines)."""
    v = {s["xref"]: s["x0"] for s in fig["shapes"] if s["x0"] == s["x1"]}
    h = sorted({round(s["y0"], 6) for s in fig["shapes"] if s["y0"] == s["y1"] and s["xref"] in ("x", "x2", "x domain", "x2 domain")})
    return {"alpha_mark": v.get("x"), "beta_mark": v.get("x2"), "retrain_lines": h}


# ---- tests --------------------------------------------------------------------------------------
def test_explorer_sliders_and_fresh_run(grid, pages):
    """05 (the testbed, a 2 α × 2 β grid): the table, the disparity readout and the figure follow
    the α and β sliders to the stored points, against Retrain's reference lines; the button runs fresh."""
    from advunlearn.evaluation.metrics import avg_disparity

    t0 = pages["t0"]
    page = pages["05"]
    wait_run_all(page)
    _took("browser: 05 open + Run All (beside 03)", t0)

    # the testbed, not fast mode: the notebook's own dataset and profile, and no fast-mode banner on the page
    assert (grid["dataset"], grid["profile"], grid["fast"]) == ("fashion-mnist", "cpu", False), grid
    assert page.locator(".jp-OutputArea-output", has_text="FAST MODE").count() == 0
    box = page.locator(".widget-vbox:has(> .au-alpha)")
    assert box.count() == 1, "the explorer widget did not render"
    alpha_rd, beta_rd = box.locator(".au-alpha .widget-readout"), box.locator(".au-beta .widget-readout")
    scheme = box.locator(".au-scheme .mod-active").inner_text().strip()
    g, alphas, betas, retrain = grid["grid"], grid["alphas"], grid["betas"], grid["retrain"][scheme]
    plot = box.locator(".widget-output")
    ret_vals = sorted(round(retrain[k], 6) for k in ("UA", "RA", "TA", "MIA_efficacy"))

    def check_point(alpha: float, beta: float) -> dict:
        p = g[(scheme, alpha, beta)]
        label = wait_text(box.locator(".au-numbers .au-source"), rf"{scheme} α={alpha:g} β={beta:g}$")
        assert label.startswith("grid:")
        assert float(alpha_rd.inner_text()) == alpha and float(beta_rd.inner_text()) == beta
        assert numbers(box.locator(".au-numbers")) == formatted(p)
        assert numbers(box.locator(".au-numbers"), "retrain-") == formatted(retrain)
        dis = box.locator(".au-numbers .au-disparity").inner_text().strip()
        assert dis == f"{avg_disparity(p, retrain):.2f}"
        # the figure shows this point: its title, its stored curves, Retrain's lines and the marks of α and β
        wait_text(plot.locator(".js-plotly-plot .gtitle"), rf"α={alpha:g}, β={beta:g}$")
        fig = plot.evaluate(_FIG_JS)
        assert fig["title"] == f"{scheme}: α={alpha:g}, β={beta:g}"
        tr = {t["name"]: t for t in fig["traces"]}
        assert tr["forget acc (grid)"]["x"] == p["curve"]["iteration"]
        assert _curve(tr["forget acc (grid)"]["y"]) == pytest.approx(_curve(p["curve"]["forget_acc"]), rel=1e-6, nan_ok=True)
        marks = _marks(fig)
        assert set(ret_vals) <= set(marks["retrain_lines"]), (marks, ret_vals)
        assert marks["alpha_mark"] == alpha and marks["beta_mark"] == betas.index(beta)
        # the fresh-run boxes follow the sliders
        assert float(box.locator(".widget-text:has-text('fresh α') input").input_value()) == alpha
        assert float(box.locator(".widget-text:has-text('fresh β') input").input_value()) == beta
        return {"disparity": dis, **marks}

    a0, b0 = _course_values()  # where the explorer opens: the course's configuration
    assert (a0, b0) == (alphas[1], betas[1])
    start = check_point(a0, b0)

    t1 = time.perf_counter()
    box.locator(".au-alpha .noUi-handle").first.focus()
    page.keyboard.press("ArrowLeft")
    a1 = alphas[len(alphas) // 2 - 1]
    moved_a = check_point(a1, b0)
    assert moved_a["disparity"] != start["disparity"] and moved_a["alpha_mark"] != start["alpha_mark"]

    box.locator(".au-beta .noUi-handle").first.focus()
    page.keyboard.press("ArrowLeft")
    b1 = betas[len(betas) // 2 - 1]
    moved_b = check_point(a1, b1)
    assert moved_b["disparity"] != moved_a["disparity"] and moved_b["beta_mark"] != moved_a["beta_mark"]
    _took("browser: 05 sliders", t1)

    t1 = time.perf_counter()
    box.locator("button.au-run").click()
    fresh = box.locator(".au-fresh")
    label = wait_text(fresh.locator(".au-fresh-source"), "fresh run", timeout_s=FRESH_S)
    assert label == f"fresh run: {scheme} α={a1:g} β={b1:g}"
    assert fresh.locator(".au-match-source").inner_text().strip().endswith(f"{scheme} α={a1:g} β={b1:g}")
    for k, v in numbers(fresh, "fresh-").items():
        assert re.fullmatch(r"\d+\.\d\d", v) and 0.0 <= float(v) <= 100.0, (k, v)
    assert numbers(fresh, "match-") == formatted(g[(scheme, a1, b1)])
    # the fresh run is drawn over the grid point it should match
    wait_text(plot.locator(".js-plotly-plot .legendtext").filter(has_text="fresh run"), "fresh run")
    _took("browser: 05 fresh run", t1)

    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "05_explorer.png"
    _figure_shot(box, shot)
    page.screenshot(path=str(SHOTS / "05_explorer_page.png"), full_page=True)
    _keep_shot(shot)
    _keep_shot(SHOTS / "05_explorer_page.png")
    print(f"\nscreenshot: {shot}")
    _took("browser: 05 total", t0)


_SAMPLER_JS = """idx => {
  // Snapshots of the live-plot cell: on every DOM change in the cell (a MutationObserver, so no drawn
  // figure is missed when a busy page renders several outputs back to back) and every 100 ms.
  window.__auStates = [];
  const cell = document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')[idx];
  const snap = () => {
    const prompt = (cell.querySelector('.jp-InputPrompt') || {}).textContent || '';
    const gd = cell.querySelector('.jp-OutputArea .js-plotly-plot');
    if (!gd || !gd.data || !gd.data.length || !gd.querySelector('.main-svg')) return;
    const x = Array.from(gd.data[0].x || []);
    const s = {points: x.length, last: x.length ? x[x.length - 1] : null, running: prompt.includes('*'),
               title: (gd.layout.title && gd.layout.title.text) || '',
               heatmap: gd.data.some(t => t.type === 'heatmap') && !!gd.querySelector('.hm, .heatmaplayer image')};
    const prev = window.__auStates[window.__auStates.length - 1];
    if (!prev || prev.points !== s.points || prev.last !== s.last || prev.running !== s.running)
      window.__auStates.push(s);
  };
  window.__auObserver = new MutationObserver(snap);
  window.__auObserver.observe(cell, {childList: true, subtree: true, characterData: true});
  window.__auSampler = setInterval(snap, 100);
}"""



def test_live_plot_updates_while_running(pages):
    """03: the live-plot cell redraws its plotly figure while Algorithm 1 runs."""
    page, idx = pages["03"], pages["idx"]
    # without the stored θ0 and attacker (05 failed to fill the store) this run trains them too
    wait_run_all(page, RUN_ALL_S if pages["prepopulated"]["error"] is None else PREPOPULATE_S)
    page.evaluate("() => { clearInterval(window.__auSampler); window.__auObserver.disconnect(); }")
    states = page.evaluate("() => window.__auStates")
    _took("browser: 03 open + Run All (beside 05)", pages["t0"])

    while_running = [s for s in states if s["running"]]
    seen = sorted({s["points"] for s in while_running})
    assert len(seen) >= 3, f"the live plot did not redraw while the cell ran: {states}"
    # every redraw adds records: the point counts only grow, and the iteration axis moves forward
    assert [s["points"] for s in states] == sorted(s["points"] for s in states), states
    assert states[-1]["last"] == LIVE_ITERATIONS, states
    assert all(s["title"].startswith("Algorithm 1 on") for s in states)
    assert all(s["heatmap"] for s in states), "the cross-correlation heatmap is missing"

    cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(idx)
    assert cell.locator(".js-plotly-plot").count() == 1  # clear_output(wait=True): one figure left
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "03_live_plot.png"
    _figure_shot(cell.locator(".js-plotly-plot"), shot)
    _keep_shot(shot)
    print(f"\nlive-plot states {[(s['points'], s['running']) for s in states]}; screenshot: {shot}")


def _figure_shot(plot, path: Path) -> None:
    """Screenshot one element (a plotly figure, a widget), whole: scrolled to the top of the notebook
    panel (the page is taller than the element), so that no part of it lies outside the panel's
    visible area."""
    plot.evaluate("el => el.scrollIntoView({block: 'start'})")
    box = plot.bounding_box()
    panel = plot.page.locator(".jp-NotebookPanel .jp-WindowedPanel-outer, .jp-NotebookPanel .jp-Notebook").first.bounding_box()
    assert box and panel and box["y"] >= panel["y"] - 1 and box["y"] + box["height"] <= panel["y"] + panel["height"] + 1, \
        f"the figure ({box}) does not fit in the notebook panel ({panel}): the screenshot would cut it"
    plot.screenshot(path=str(path))


_PLOTS_JS = """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .js-plotly-plot')].map(gd => ({
  title: (gd.layout.title && gd.layout.title.text) || '',
  traces: gd.data.map(t => ({type: t.type, name: t.name || '', showlegend: t.showlegend !== false,
                             color: (t.marker && t.marker.color) || (t.line && t.line.color) || null,
                             width: t.marker && t.marker.line ? t.marker.line.width : null})),
  annotations: (gd.layout.annotations || []).map(a => a.text),
  ytypes: Object.keys(gd.layout).filter(k => /^yaxis\\d*$/.test(k)).map(k => gd.layout[k].type),
  rects: (gd.layout.shapes || []).filter(s => s.type === 'rect').length}))"""


def test_evaluation_figures(server, work, playwright_, pages):
    """04 on the testbed, after 03 and 05 (which stored θ0, the attacker and Retrain): Run All computes
    every registered method; its two figures, as drawn in the page, use the tables' method labels, one
    colour per method, Ours highlighted, and a logarithmic share axis for the histograms."""
    from advunlearn.course.viz import OURS_COLOR
    from advunlearn.methods import label, names

    t0 = time.perf_counter()
    _copy_with_params(work, "04_evaluation.ipynb", EVALUATION_NB, [(r'^workers = "auto"', "workers = 2")])
    nb04 = LabPage(playwright_, server, EVALUATION_NB, height=4200)
    try:
        nb04.goto()
        page = nb04.wait_ready()
        start_run_all(page)
        wait_run_all(page, EVALUATION_S)
        _took("browser: 04 open + Run All (every method)", t0)
        assert page.locator(".jp-OutputArea-output", has_text="FAST MODE").count() == 0
        plots = page.evaluate(_PLOTS_JS)
        mia = next(p for p in plots if p["title"].startswith("MIA efficacy on D_f"))
        hist = next(p for p in plots if p["title"].startswith("confidence p_y"))
        labels = [label(m) for m in names()]
        # Figure 2: one bar series per registered method, named by its label, each in its own colour, Ours outlined
        assert [t["name"] for t in mia["traces"]] == labels
        assert len({t["color"] for t in mia["traces"]}) == len(labels)
        widths = {t["name"]: t["width"] for t in mia["traces"]}
        assert widths["Ours"] > max(w for n, w in widths.items() if n != "Ours")
        # the histograms: a panel per method titled with its label (Ours in bold), log share axes, Ours framed
        assert [re.sub(r"</?b>", "", a) for a in hist["annotations"][:len(labels)]] == labels
        modules = {m for m in names() if label(m) != m}  # neggrad_plus, scrub_r, ...: never a title
        assert "<b>Ours</b>" in hist["annotations"] and not modules & {re.sub(r"</?b>", "", a) for a in hist["annotations"]}
        assert hist["ytypes"] and set(hist["ytypes"]) == {"log"}
        assert hist["rects"] == 1
        forget = [t for t in hist["traces"] if t["name"] == "D_f (forget set)"]
        assert len(forget) == len(labels) and {t["color"] for t in forget} == {OURS_COLOR}
        SHOTS.mkdir(parents=True, exist_ok=True)
        for i, name in ((plots.index(mia), "04_figure2_mia.png"), (plots.index(hist), "04_confidence_histograms.png")):
            _figure_shot(page.locator(".jp-NotebookPanel .jp-Notebook .js-plotly-plot").nth(i), SHOTS / name)
            _keep_shot(SHOTS / name)
        print(f"\nscreenshots: {SHOTS / '04_figure2_mia.png'}, {SHOTS / '04_confidence_histograms.png'}")
    finally:
        nb04.close()
