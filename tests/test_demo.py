"""`stylekit demo`: the model picker, the app through Gradio's Python client, and once in a real headless browser.

The servers run on 127.0.0.1 inside the test (marker `loopback`: any other address still fails the test), with
a tiny randomly initialized checkpoint; the browser test drives Debian's Chromium through Selenium and skips
with a reason where either is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import stylekit
from stylekit.checkpoint import save_checkpoint, save_model
from stylekit.cli import app
from stylekit.errors import StylekitError
from stylekit.models import zoo
from stylekit.models.transformer import TransformerNet, TransformerOptions
from stylekit.testing import make_images

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# Gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix
GRADIO_WARNINGS = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def tiny_net(seed: int = 0) -> TransformerNet:
    torch.manual_seed(seed)
    return TransformerNet(TransformerOptions(channels=4, residual_blocks=1))


def make_run(folder: Path, step: int = 3, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"state": "finished", "step": step}))
    save_checkpoint(folder, step, tiny_net(seed), {}, {})
    return folder


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder with runs/tiny (a checkpoint), runs/empty (no checkpoint yet), one photo, no shipped models."""
    monkeypatch.chdir(tmp_path)
    make_run(Path("runs/tiny"))
    Path("runs/empty").mkdir(parents=True)
    (Path("runs/empty") / "status.json").write_text(json.dumps({"state": "running", "step": 1}))
    photo = make_images(tmp_path / "photos", 1, size=(44, 30))[0]
    monkeypatch.setattr(zoo, "pretrained_dir", lambda: tmp_path / "shipped")
    return photo


def test_picker_lists_runs_with_checkpoints_and_shipped_models(workspace, tmp_path):
    from stylekit.demo import Choice, model_choices

    assert model_choices() == [Choice("runs/tiny (step 3)", "runs/tiny")]  # runs/empty has nothing to load yet
    (tmp_path / "shipped").mkdir()
    save_model(tiny_net(1), tmp_path / "shipped" / "wave.safetensors")
    assert [c.source for c in model_choices()] == ["runs/tiny", "wave"]
    # a preselected shipped model or run comes first; a folder of runs replaces runs/
    assert [c.source for c in model_choices(shipped="wave")] == ["wave", "runs/tiny"]
    make_run(Path("grid/a-seed0"), step=7)
    assert [c.label for c in model_choices("grid")] == ["grid/a-seed0 (step 7)", "wave (shipped)"]
    assert model_choices("grid/a-seed0/checkpoints/step_0000007")[0].source == "grid/a-seed0/checkpoints/step_0000007"
    with pytest.raises(StylekitError, match="shipped models: wave"):
        model_choices(shipped="starry")
    with pytest.raises(StylekitError, match="no such run"):
        model_choices("runs/typo")


def test_demo_command_explains_what_is_missing(workspace, monkeypatch):
    shutil.rmtree("runs")
    result = CliRunner().invoke(app, ["demo"])
    assert isinstance(result.exception.original, StylekitError) and "no models to show" in str(result.exception)
    assert "stylekit train recipes/quickstart.yaml" in str(result.exception)
    make_run(Path("runs/tiny"))
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if `stylekit[demo]` were not installed
    result = CliRunner().invoke(app, ["demo"])
    assert isinstance(result.exception.original, StylekitError)
    assert 'pip install "stylekit[demo]"' in str(result.exception)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(workspace, tmp_path, monkeypatch):
    """The demo on 127.0.0.1 (runs/tiny preselected): yields (url, photo)."""
    pytest.importorskip("gradio", reason='the demo needs Gradio: pip install "stylekit[demo]"')
    from stylekit.demo import DemoEngine, build_app, model_choices, serve

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    engine = DemoEngine(device="cpu", output_dir=tmp_path / "outputs")
    demo_app = build_app(model_choices(), engine)
    url = serve(demo_app, port=free_port(), block=False)
    yield url, workspace
    demo_app.close()
    engine.close()


def expected(photo: Path, strength: float) -> np.ndarray:
    picture = stylekit.load("runs/tiny").stylize(Image.open(photo), strength=strength)
    return np.asarray(picture, dtype=np.int16)


@pytest.mark.loopback
@GRADIO_WARNINGS
def test_client_gets_the_stylized_photo_at_each_strength(server, tmp_path):
    from gradio_client import Client, handle_file

    url, photo = server
    client = Client(url, analytics_enabled=False, verbose=False, download_files=str(tmp_path / "client"))
    original = np.asarray(Image.open(photo).convert("RGB"), dtype=np.int16)
    for strength in (1.0, 0.5, 0.0):
        shown, download = client.predict(handle_file(str(photo)), "runs/tiny", strength, api_name="/stylize")
        shown = np.asarray(Image.open(shown).convert("RGB"), dtype=np.int16)
        assert shown.shape == original.shape
        # the Python API's answer, pixel for pixel (±1 for the blend's rounding)
        assert np.abs(shown - expected(photo, strength)).max() <= 1, strength
        assert Path(download).name == "img_000-tiny.png"
        assert np.array_equal(np.asarray(Image.open(download), dtype=np.int16), shown)
    assert np.abs(shown - original).max() <= 1  # strength 0 gives the photo back
    assert np.abs(expected(photo, 1.0) - original).mean() > 10  # and strength 1 really changes it


def skip_unless(condition, reason: str) -> None:
    """Skip with ``reason``; under STYLEKIT_REQUIRE_BROWSER=1 (.ci/run, which installs the browser) fail instead."""
    if not condition:
        (pytest.fail if os.environ.get("STYLEKIT_REQUIRE_BROWSER") == "1" else pytest.skip)(reason)


def chromium(tmp_path: Path, downloads: Path | None = None):
    """Headless Debian Chromium that reaches nothing but 127.0.0.1 (skips, or under STYLEKIT_REQUIRE_BROWSER=1
    fails, where Chromium, its driver or Selenium is missing)."""
    skip_unless(CHROMIUM and CHROMEDRIVER, "needs Chromium and its driver: apt-get install chromium chromium-driver")
    skip_unless(importlib.util.find_spec("selenium"), "needs Selenium: pip install selenium")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1280,1000",
                 # nothing but this machine resolves: a page that tried to reach the internet would fail here
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    if downloads is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


@pytest.mark.loopback
@GRADIO_WARNINGS
def test_browser_upload_shows_and_downloads_the_stylized_photo(server, tmp_path):
    """A real headless Chromium: upload the photo, see the stylized picture, click Download PNG."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, photo = server
    downloads = tmp_path / "downloads"
    driver = chromium(tmp_path, downloads)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]"))).send_keys(str(photo))
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#stylize"))).click()
        src = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#result img").get_attribute("src") or False)
        with urllib.request.urlopen(src, timeout=30) as response:  # the picture the page shows
            shown = Image.open(response)
            shown.load()
        assert np.abs(np.asarray(shown.convert("RGB"), dtype=np.int16) - expected(photo, 1.0)).max() <= 1
        driver.find_element(By.CSS_SELECTOR, "#download").click()
        deadline = time.monotonic() + 30
        while not list(downloads.glob("*.png")) and time.monotonic() < deadline:
            time.sleep(0.2)
        saved = list(downloads.glob("*.png"))
        assert [p.name for p in saved] == ["img_000-tiny.png"]
        assert np.array_equal(np.asarray(Image.open(saved[0]), dtype=np.int16),
                              np.asarray(shown.convert("RGB"), dtype=np.int16))
    finally:
        driver.quit()


def test_a_file_that_is_no_image_gets_one_sentence(workspace, tmp_path):
    from stylekit.demo import DemoEngine

    fake = tmp_path / "notes.jpg"
    fake.write_text("not a photo")
    engine = DemoEngine(device="cpu", output_dir=tmp_path / "outputs")
    with pytest.raises(StylekitError, match=r"^notes\.jpg: not an image Pillow can read; give a JPEG, PNG or WebP"):
        engine.stylize(fake, "runs/tiny", 1.0)
    engine.close()


@pytest.fixture
def not_a_photo(tmp_path) -> Path:
    fake = tmp_path / "notes.png"
    fake.write_text("not a photo")
    return fake


@pytest.mark.loopback
@GRADIO_WARNINGS
def test_client_uploading_a_non_image_gets_a_message_not_a_processing_error(server, tmp_path, not_a_photo):
    from gradio_client import Client, handle_file

    url, _ = server
    client = Client(url, analytics_enabled=False, verbose=False, download_files=str(tmp_path / "client"))
    with pytest.raises(Exception, match="not an image Pillow can read") as caught:
        client.predict(handle_file(str(not_a_photo)), "runs/tiny", 1.0, api_name="/stylize")
    assert "preprocess" not in str(caught.value)


@pytest.mark.loopback
@GRADIO_WARNINGS
def test_browser_upload_of_a_non_image_shows_one_sentence(server, tmp_path, not_a_photo):
    """What a new user saw in headless Chromium: a non-image upload gets our sentence, not Gradio's raw error."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = server
    driver = chromium(tmp_path)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#photo input[type=file]")).send_keys(str(not_a_photo))
        shown = wait.until(lambda d: "not an image" in d.find_element(By.TAG_NAME, "body").text
                           and d.find_element(By.TAG_NAME, "body").text)
        assert "notes.png: not an image Pillow can read" in shown and "preprocess" not in shown
    finally:
        driver.quit()


# -- a multi-style model: its style list and the blend slider ---------------------------------------------------

def tiny_multi_net(seed: int = 0):
    from stylekit.models.conditional import ConditionalNet

    torch.manual_seed(seed)
    net = ConditionalNet({"channels": 4, "residual_blocks": 1, "styles": ["wave", "udnie", "scream"]})
    for parameter in net.style_parameters():  # styles that differ visibly
        parameter.data += torch.randn_like(parameter)
    return net


@pytest.fixture
def multi_server(workspace, tmp_path, monkeypatch):
    """The demo with a shipped three-style model preselected: yields (url, photo)."""
    pytest.importorskip("gradio", reason='the demo needs Gradio: pip install "stylekit[demo]"')
    from stylekit.demo import DemoEngine, build_app, model_choices, serve

    (tmp_path / "shipped").mkdir()
    save_model(tiny_multi_net(), tmp_path / "shipped" / "multi.safetensors")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    engine = DemoEngine(device="cpu", output_dir=tmp_path / "outputs")
    demo_app = build_app(model_choices(shipped="multi"), engine)
    url = serve(demo_app, port=free_port(), block=False)
    yield url, workspace
    demo_app.close()
    engine.close()


def blended(photo: Path, style) -> np.ndarray:
    return np.asarray(stylekit.load("multi").stylize(Image.open(photo), style=style), dtype=np.int16)


def test_blend_controls_make_the_mixture_the_python_api_takes():
    from stylekit.demo import NO_BLEND, mixture

    assert mixture(None, None, 0.5) is None  # a single-style model
    assert mixture("wave", NO_BLEND, 0.7) == {"wave": 1.0} == mixture("wave", "udnie", 0.0)
    assert mixture("wave", "udnie", 0.4) == {"wave": 0.6, "udnie": 0.4}
    assert mixture("wave", "udnie", 1.0) == {"udnie": 1.0} and mixture("wave", "wave", 0.5) == {"wave": 1.0}


@pytest.mark.loopback
@GRADIO_WARNINGS
def test_client_picks_and_blends_the_styles_of_a_multi_style_model(multi_server, tmp_path):
    from gradio_client import Client, handle_file

    url, photo = multi_server
    client = Client(url, analytics_enabled=False, verbose=False, download_files=str(tmp_path / "client"))

    def shown(*style_inputs):
        picture, _ = client.predict(handle_file(str(photo)), "multi", 1.0, *style_inputs, api_name="/stylize")
        return np.asarray(Image.open(picture).convert("RGB"), dtype=np.int16)

    udnie = shown("udnie", "(none)", 0.0)
    assert np.abs(udnie - blended(photo, "udnie")).max() <= 1
    mixed = shown("wave", "udnie", 0.4)
    assert np.abs(mixed - blended(photo, {"wave": 0.6, "udnie": 0.4})).max() <= 1
    assert np.abs(mixed - udnie).mean() > 1 and np.abs(mixed - blended(photo, "wave")).mean() > 1


@pytest.mark.loopback
@GRADIO_WARNINGS
def test_browser_lists_the_styles_and_blends_two_with_the_slider(multi_server, tmp_path):
    """Headless Chromium: the style list shows the model's styles; pick a second style, move the blend slider to
    0.4, stylize: the page shows the Python API's blend of the two."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, photo = multi_server
    driver = chromium(tmp_path)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        style_input = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#style input")))
        assert style_input.get_attribute("value") == "wave"
        style_input.click()  # the list of the model's styles opens
        listed = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#style li[role=option]") or False)
        assert [option.get_attribute("aria-label") for option in listed] == ["wave", "udnie", "scream"]
        style_input.send_keys(Keys.ESCAPE)
        second = driver.find_element(By.CSS_SELECTOR, "#blend-with input")
        second.click()
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#blend-with li[aria-label=udnie]"))).click()
        assert wait.until(lambda d: second.get_attribute("value") == "udnie")
        amount = driver.find_element(By.CSS_SELECTOR, "#blend input[type=number]")
        amount.send_keys(Keys.CONTROL, "a")
        amount.send_keys("0.4", Keys.TAB)
        assert wait.until(lambda d: driver.find_element(By.CSS_SELECTOR, "#blend input[type=range]")
                          .get_attribute("value") == "0.4")
        driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(str(photo))
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#stylize"))).click()
        expected_picture = blended(photo, {"wave": 0.6, "udnie": 0.4})

        def shows_the_blend(d):
            src = d.find_element(By.CSS_SELECTOR, "#result img").get_attribute("src") if \
                d.find_elements(By.CSS_SELECTOR, "#result img") else None
            if not src:
                return False
            with urllib.request.urlopen(src, timeout=30) as response:
                picture = np.asarray(Image.open(response).convert("RGB"), dtype=np.int16)
            return picture.shape == expected_picture.shape and np.abs(picture - expected_picture).max() <= 1

        assert wait.until(shows_the_blend)
    finally:
        driver.quit()
