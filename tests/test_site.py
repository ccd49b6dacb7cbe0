"""`make site`: static HTML that opens from the file system (issue 14). The browser part needs Chromium
(Debian's `chromium` package) and is skipped without it."""
from __future__ import annotations

import html.parser
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _site_module():
    spec = importlib.util.spec_from_file_location("course_site", ROOT / "notebooks" / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        self.images += tag == "img" and (attrs.get("src") or "").startswith("data:image/png")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    failed = _site_module().build_site([ROOT / "notebooks" / "00_welcome.ipynb"], out, profile="ci",
                                       cell_timeout=240, notebook_timeout=600)
    assert failed == []
    return out


def test_index_and_page_are_static_and_linked(site):
    from course_lib.exercises.publish import colab_url, read_setting

    index = (site / "index.html").read_text()
    parser = _Links()
    parser.feed(index)
    local = [h for h in parser.links if not h.startswith(("http://", "https://"))]
    assert local == ["notebooks/00_welcome.html"]
    assert all((site / h).is_file() for h in local)
    setting = read_setting(ROOT)
    assert colab_url(setting, "notebooks/student/00_welcome.ipynb") in index
    assert "<table>" in index and "PortraitNet 96.62" in index and "welcome (this one)" in index
    assert "not built" not in index and (site / ".nojekyll").exists()
    assert "offline images only (no local portrait data)" in index  # a public site shows only publishable images
    page = _Links()
    page.feed((site / "notebooks" / "00_welcome.html").read_text())
    assert page.images >= 1, "the executed notebook's figures are embedded in its page"


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="no Chromium here (Debian: apt-get install chromium)")
@pytest.mark.parametrize("page", ["index.html", "notebooks/00_welcome.html"])
def test_pages_render_in_a_headless_browser(site, page, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--window-size=1200,1600", f"--screenshot={shot}", (site / page).as_uri()]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10, "the page rendered blank"
    dom = subprocess.run(args[:-2] + ["--dump-dom", (site / page).as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert "Welcome" in dom
    keep = os.environ.get("COURSE_SITE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(keep) / (page.replace("/", "_") + ".png"))
