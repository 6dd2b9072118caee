"""The labelling page in a real browser (Chromium through selenium): label by keyboard, reload, resume."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT
from synth import render

pytest.importorskip("fastapi", reason="the labelling page needs the serve extra: pip install \"crnn_captcha[serve]\"")
pytest.importorskip("uvicorn", reason="the labelling page needs the serve extra: pip install \"crnn_captcha[serve]\"")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the dev extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("the browser test needs Chromium and its driver (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

#: Where the docs' screenshot of the page is written, when this is set (docs/label_page.png).
SCREENSHOT_ENV = "CRNN_CAPTCHA_SCREENSHOT"
TEXTS = ["2b4c6", "3d5e7", "4f6g8", "5m7n2", "6p8w3", "7x2y4", "8b3c5", "2d4e6"]


def get_state(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as r:
        return json.load(r)


def start(folder: Path, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "crnn_captcha.label", str(folder), "--no-browser", "--port",
                             str(port), "--order", "name"], cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"label exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            get_state(port)
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail("the labelling page did not answer within 90 s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,700"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def showing(driver, name: str) -> None:
    WebDriverWait(driver, 15).until(lambda d: d.find_element(By.ID, "image").get_attribute("alt") == name)


def key(driver, *keys: str, ctrl: bool = False) -> None:
    chain = webdriver.ActionChains(driver)
    if ctrl:
        chain = chain.key_down(Keys.CONTROL)
    chain = chain.send_keys(*keys)
    if ctrl:
        chain = chain.key_up(Keys.CONTROL)
    chain.perform()


def manifest_rows(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as f:
        return {row["path"]: row["label"] for row in csv.DictReader(f)}


@pytest.mark.slow
def test_label_by_keyboard_reload_and_resume(tmp_path, browser):
    from test_serve import free_port

    folder = tmp_path / "captchas"
    folder.mkdir()
    for i, text in enumerate(TEXTS):  # file names say nothing of the text: it has to be labelled
        render(text, seed=i).save(folder / f"img{i}.png")
    port = free_port()
    proc = start(folder, port, tmp_path / "label.log")
    try:
        proposals = {item["name"]: item["proposal"] for item in get_state(port)["queue"]}
        page = f"http://127.0.0.1:{port}/"
        browser.get(page)
        showing(browser, "img0.png")
        assert browser.find_element(By.ID, "label").get_attribute("value") == proposals["img0.png"]
        key(browser, Keys.ENTER)  # accept the proposal
        showing(browser, "img1.png")
        key(browser, "zz9", Keys.ENTER)  # typing replaces the selected proposal
        showing(browser, "img2.png")
        key(browser, Keys.ESCAPE)  # skip for now
        showing(browser, "img3.png")
        key(browser, "m", ctrl=True)  # unreadable
        showing(browser, "img4.png")
        key(browser, "abc", Keys.ENTER)
        showing(browser, "img5.png")
        key(browser, "z", ctrl=True)  # undo: img4 comes back, its label taken out
        showing(browser, "img4.png")
        assert "img4.png" not in manifest_rows(folder / "labels.csv")
        key(browser, Keys.BACKSPACE, "4f6g8", Keys.ENTER)
        showing(browser, "img5.png")
        if os.environ.get(SCREENSHOT_ENV):
            browser.save_screenshot(os.environ[SCREENSHOT_ENV])
        browser.refresh()  # a reload goes on where it stopped
        showing(browser, "img5.png")
        figures = browser.find_element(By.ID, "figures").text
        assert "labelled 3 of 8" in figures and "1 unreadable" in figures, figures
    finally:
        stop(proc)
    want = {"img0.png": proposals["img0.png"], "img1.png": "zz9", "img4.png": "4f6g8"}
    assert manifest_rows(folder / "labels.csv") == want
    proc = start(folder, port, tmp_path / "label2.log")  # a new process resumes from what is on disk
    try:
        browser.get(page)
        showing(browser, "img5.png")
        queue = [item["name"] for item in get_state(port)["queue"]]
        assert queue == ["img5.png", "img6.png", "img7.png", "img2.png"]  # the skipped one after the rest
    finally:
        stop(proc)
    assert manifest_rows(folder / "labels.csv") == want
    assert sorted(os.listdir(folder)) == sorted([f"img{i}.png" for i in range(8)] + ["labels.csv", "labels.csv.log",
                                                                                      ".labels.csv.lock"])
