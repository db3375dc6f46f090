"""``report.html`` in a real browser (headless Chromium): every image loads, nothing is
fetched from the network, and the first screen shows the headline and the effects figure.

The report is built from a small real results folder: an estimate with a mediator and a
DAG (tiny draws) and two refutation tests (posterior predictive check, 3 placebos), written
the way the command line writes them. A deliberately broken page (a corrupt image, a
CDN script and style sheet, a remote image, a fetch) shows that the checks fail when they
should.

Chromium checks a page three ways (:func:`inspect_page`): a script injected into a copy of
the page reports, once it has loaded, each image's ``naturalWidth``, the resource timing
entries and every ``src``/``href``/``url(...)`` that is not a ``data:`` URI; and the
browser's own network log (``--log-net-log``) lists every request the page made (those
whose network isolation key is the page's ``file://`` site; the browser's background
requests are not the page's). Host names resolve nowhere (``--host-resolver-rules``), so
nothing leaves the machine.

Skipped when the ``chromium`` binary is absent: install it with ``apt-get install
chromium`` (Debian; ``.ci/run`` does so when run as root).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="the browser test needs the `chromium` binary; install it with "
           "`apt-get install chromium` (Debian) to enable it")

WIDTH, HEIGHT = 1280, 900
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={WIDTH},{HEIGHT}", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         "--disable-sync", "--disable-extensions", "--disable-default-apps"]

PROBE = """<script>
window.addEventListener('load', function () {
  setTimeout(function () {
    var images = Array.prototype.map.call(document.images, function (img) {
      return {src: (img.getAttribute('src') || '').slice(0, 60),
              loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth};
    });
    var external = [];
    document.querySelectorAll('[src],[href],[srcset],[poster],[data]').forEach(function (el) {
      ['src', 'href', 'srcset', 'poster', 'data'].forEach(function (name) {
        var value = el.getAttribute(name);
        if (value && !/^(data:|#)/.test(value.trim())) external.push(name + '=' + value);
      });
    });
    var css = Array.prototype.map.call(document.querySelectorAll('style'),
                                       function (s) { return s.textContent; }).join('');
    (css.match(/url\\(\\s*['"]?(?!data:)[^)'"]+/g) || []).forEach(function (u) {
      external.push(u);
    });
    var box = function (id) {
      var el = document.getElementById(id);
      if (!el) return null;
      var r = el.getBoundingClientRect();
      return {top: r.top, bottom: r.bottom, height: r.height};
    };
    var report = {images: images, external: external, viewport: window.innerHeight,
                  resources: performance.getEntriesByType('resource').map(
                    function (e) { return e.name; }),
                  headline: box('headline'), figure: box('effects-figure'),
                  headline_text: (document.getElementById('headline') || {}).textContent};
    var pre = document.createElement('pre');
    pre.id = '__probe__';
    pre.textContent = JSON.stringify(report);
    document.body.appendChild(pre);
  }, 300);
});
</script>"""


def _chromium(args: list[str], cwd: Path) -> str:
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={cwd / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _page_requests(netlog: Path) -> list[str]:
    """URLs the page itself requested (network isolation key of its file:// site)."""
    log = json.loads(netlog.read_text(encoding="utf-8", errors="replace"))
    kinds = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if kinds.get(event["type"]) == "URL_REQUEST_START_JOB" and \
                "file://" in str(params.get("network_isolation_key", "")):
            urls.append(params["url"])
    return sorted(set(urls))


def inspect_page(page: Path, work: Path) -> dict:
    """Load a copy of ``page`` with the probe in headless Chromium; return its findings.

    Keys: ``images`` (src, loaded, width), ``external`` (non-data references in the DOM
    and style sheets), ``resources`` (resource timing entries), ``requests`` (network
    requests of the page, from the browser's net log), ``headline`` and ``figure``
    (bounding boxes), ``viewport`` (inner height) and ``problems``: one line per image
    that did not load and per reference, resource or request that is not a ``data:``
    URI.
    """
    work.mkdir(parents=True, exist_ok=True)
    text = page.read_text(encoding="utf-8")
    probe = work / "probe.html"
    probe.write_text(text.replace("</body>", PROBE + "</body>") if "</body>" in text
                     else text + PROBE, encoding="utf-8")
    netlog = work / "netlog.json"
    dom = _chromium(["--virtual-time-budget=5000", f"--log-net-log={netlog}", "--dump-dom",
                     probe.as_uri()], work)
    found = re.search(r'<pre id="__probe__">(.*?)</pre>', dom, re.S)
    assert found, "the probe script did not run: " + dom[-500:]
    report = json.loads(html.unescape(found.group(1)))
    report["requests"] = _page_requests(netlog)
    problems = [f"image did not load: {i['src']}" for i in report["images"] if not i["loaded"]]
    problems += [f"external reference: {x}" for x in report["external"]]
    problems += [f"resource loaded: {r}" for r in report["resources"]
                 if not r.startswith("data:")]
    problems += [f"network request: {u}" for u in report["requests"]
                 if not u.startswith("data:")]
    report["problems"] = problems
    return report


def screenshot(page: Path, png: Path) -> Path:
    _chromium([f"--screenshot={png}", page.as_uri()], png.parent)
    assert png.is_file() and png.stat().st_size > 0
    return png


# --------------------------------------------------------------------------- fixtures

DAG = """digraph plants {
    quality [observed="no", level="unit"];
    dig -> cost_eff; cost_eff -> exp_res; dig -> exp_res;
    scale_ln -> cost_eff; scale_ln -> exp_res;
    quality -> cost_eff; quality -> exp_res;
}
"""

SPEC = """
[data]
unit  = "plant"
group = "town"
time  = "period"

[variables]
outcome   = "exp_res"
treatment = "dig"
controls  = ["scale_ln"]
mediators = ["cost_eff"]

[model]
group_time_effects = false
graph = "plants.dot"
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory, firm_panel_factory):
    """A results folder as `vagg-bayes estimate` and `refute` write it, and its report."""
    import warnings

    from vagg_bayes.analysis import Analysis
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.refute import Options, refute
    from vagg_bayes.report.html import write_report
    from vagg_bayes.spec import load_spec

    root = tmp_path_factory.mktemp("report")
    (root / "plants.dot").write_text(DAG)
    (root / "spec.toml").write_text(SPEC)
    data, _ = firm_panel_factory(n_towns=10, n_plants=5, n_periods=4, seed=7)
    out = root / "out"
    spec = load_spec(root / "spec.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = Analysis(spec, SamplerSettings(draws=150, tune=150, chains=2,
                                                  random_seed=3))
        result = analysis.fit(data, source="panel.csv")
        result.write(out, manifest={"seed": 3, "command_line": ["vagg-bayes", "estimate"]})
        refute(analysis, data, result=result, out=out, source="panel.csv",
               tests=("posterior_predictive", "placebo_permute_groups"),
               options=Options(placebos=3, seed=3, workers=1), progress=False)
    return out, write_report([out])


# --------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_report_loads_every_image_and_nothing_from_the_network(results, tmp_path):
    out, page = results
    assert page == out / "report.html"
    report = inspect_page(page, tmp_path / "probe")
    assert report["problems"] == []
    # effects, DAG, densities, ppc.png, the placebo figure, sensitivity.png at least
    assert len(report["images"]) >= 6
    assert all(i["width"] > 0 and i["src"].startswith("data:image/png;base64,")
               for i in report["images"])


@pytest.mark.slow
def test_first_screen_shows_the_headline_and_the_effects_figure(results, tmp_path):
    from vagg_bayes.report.html import decimals, fmt

    out, page = results
    report = inspect_page(page, tmp_path / "probe")
    total = pd.read_csv(out / "effects.csv").set_index("effect").loc["total"]
    d = decimals(total["sd"])
    assert report["headline_text"].startswith(
        f"A one-unit rise in dig changes exp_res by {fmt(total['mean'], d)} (94 % HDI "
        f"{fmt(total['hdi_low'], d)} to {fmt(total['hdi_high'], d)}); P(effect > 0) = ")
    assert report["headline"]["bottom"] <= report["viewport"]
    assert report["figure"]["height"] > 100  # the figure is drawn, not a broken icon
    assert report["figure"]["bottom"] <= report["viewport"]  # whole, on the first screen
    shot = screenshot(page, tmp_path / "first_screen.png")
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (WIDTH, HEIGHT)
        # not a blank page: the figure's dark ink is there
        assert image.convert("L").getextrema()[0] < 60


def test_a_broken_page_fails_every_check(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head>"
        '<link rel="stylesheet" href="https://cdn.example.com/style.css">'
        '<script src="https://cdn.example.com/plotly.js"></script>'
        "<style>body{background:url(https://cdn.example.com/bg.png)}</style></head><body>"
        '<p id="headline">A one-unit rise</p>'
        '<img id="effects-figure" src="data:image/png;base64,AAAA">'
        '<img src="http://example.com/figure.png">'
        "<script>fetch('http://example.org/data.json').catch(function () {});</script>"
        "</body></html>")
    report = inspect_page(page, tmp_path / "probe")
    problems = "\n".join(report["problems"])
    assert "image did not load: data:image/png;base64,AAAA" in problems
    assert "image did not load: http://example.com/figure.png" in problems
    assert "external reference: href=https://cdn.example.com/style.css" in problems
    assert "external reference: src=https://cdn.example.com/plotly.js" in problems
    assert "cdn.example.com/bg.png" in problems
    assert "network request: http://example.org/data.json" in report["problems"]
    assert "network request: https://cdn.example.com/plotly.js" in report["problems"]


def test_a_good_page_passes_every_check(tmp_path):
    import base64

    from vagg_bayes.report.figures import Interval, forest

    png = base64.b64encode(forest([Interval("total", 0.3, 0.2, 0.4, "total")],
                                  xlabel="x")).decode()
    page = tmp_path / "good.html"
    page.write_text(f'<html><body><p id="headline">ok</p><img id="effects-figure" '
                    f'src="data:image/png;base64,{png}"><a href="#top">top</a></body></html>')
    report = inspect_page(page, tmp_path / "probe")
    assert report["problems"] == [] and report["images"][0]["width"] > 0
