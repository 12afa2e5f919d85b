"""The web page of `rag serve` in a real headless Chromium: upload documents and watch the job,
ask a question and watch the answer stream in, open a source, ask a follow-up.

Drives Debian's /usr/bin/chromium with /usr/bin/chromedriver through selenium; skipped when
either is missing (failed instead when $CI is set). One real `rag serve` (tiny preset, an empty
index in a temp dir, 127.0.0.1 on a free port) serves the module and is stopped at the end.

The screenshot goes to the test's temp dir, or to $SERVE_PAGE_SCREENSHOT. The committed
evals/results/serve-page.png was made by hand with the default preset:
    SERVE_PAGE_PRESET=default SERVE_PAGE_SCREENSHOT=evals/results/serve-page.png \
        .venv/bin/python -m pytest -q tests/test_serve_browser.py -k asks
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rag.llm.llama_server import free_port

pytestmark = pytest.mark.llm

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "corpora" / "demo"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# a few demo files, so the server embeds a small corpus (the machine may be busy)
UPLOADED = ["kestrel-k2-service-manual.pdf", "troubleshooting.md", "faq.md", "warranty.txt"]
QUESTION = "What code opens the Kestrel K2 console service menu?"
FOLLOW_UP = "How often should its anemometer bearings be replaced?"
START_S = 240  # loading the embedder and the model on a busy machine
ANSWER_S = 240
INGEST_S = 300
API_KEY = "page-test-key"  # the server wants one, so the page's key field is tested too
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BROWSER_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,860", "--lang=en-GB"]  # fmt: skip


def need_browser() -> None:
    """Skip (fail under CI) unless Chromium, chromedriver and selenium are all here."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    if missing:
        reason = (f"the browser test needs {' and '.join(missing)} "
                  "(apt-get install chromium chromium-driver; pip install selenium)")  # fmt: skip
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class Served:
    base: str
    index: Path
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.base + path, headers=AUTH)
        with urllib.request.urlopen(request, timeout=10) as res:
            return json.load(res)


def wait_for_health(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"rag serve exited ({proc.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as res:
                if json.load(res).get("status") == "ok":
                    return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"rag serve did not become healthy in {START_S} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Iterator[Served]:
    """A real `rag serve` on an empty index, stopped at the end whatever happens."""
    need_browser()  # before the expensive part
    work = tmp_path_factory.mktemp("serve")
    index, log = work / "idx", work / "serve.log"
    port = free_port()
    paths = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "RAG_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": paths}
    preset = os.environ.get("SERVE_PAGE_PRESET", "tiny")
    command = [sys.executable, "-m", "rag_cli", "serve", "--index", str(index),
               "--preset", preset, "--host", "127.0.0.1", "--port", str(port),
               "--api-key", API_KEY]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, proc, log)
        yield Served(base, index, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, quit at the end whatever happens."""
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in BROWSER_ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            service.stop()


# Records what the page shows while it works, from the DOM's own mutation records (so a
# state replaced within one task is still seen): every stage line and job line, the streamed
# answer text (pieces appended while streaming), and each chat request body sent.
WATCH = """
const seen = window.seen = {stages: [], jobLines: [], streamed: 0, chats: []};
const original = window.fetch;
window.fetch = (url, options) => {
  if (String(url).includes("chat/completions")) seen.chats.push(JSON.parse(options.body));
  return original(url, options);
};
const note = (list, text) => { if (text && !list.includes(text)) list.push(text); };
new MutationObserver((records) => {
  for (const r of records) for (const n of r.addedNodes) {
    const el = r.target;
    if (el.classList.contains("stage")) note(seen.stages, n.textContent);
    if (el.id === "job-text") note(seen.jobLines, n.textContent);
    const live = !n.isConnected || el.classList.contains("streaming");
    if (el.classList.contains("answer-text") && n.nodeType === Node.TEXT_NODE && live) {
      seen.streamed += n.textContent.length;
    }
  }
}).observe(document.body, {subtree: true, childList: true});
"""


def open_page(browser: Any, server: Served) -> Any:
    """Load the page; give it the API key if it asks (it keeps it in localStorage)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.base + "/")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 20).until(lambda d: status.text not in ("", "Connecting…"))
    if status.text == "API key needed":
        browser.find_element(By.ID, "api-key").send_keys(API_KEY, Keys.ENTER)
    WebDriverWait(browser, 20).until(lambda d: "documents" in status.text)
    browser.execute_script(WATCH)
    return WebDriverWait


def js_errors(browser: Any) -> list[str]:
    """Uncaught errors the page logged (failed requests the page reports itself are fine)."""
    return [e["message"] for e in browser.get_log("browser")
            if e["level"] == "SEVERE" and e.get("source") == "javascript"]  # fmt: skip


def upload_demo(server: Served) -> None:
    """Index the demo files through the API (for a test run without the upload test)."""
    if server.get("/status")["documents"] >= len(UPLOADED):
        return
    boundary = "ragtestboundary"
    body = b""
    for name in UPLOADED:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"'
        body += f"{head}\r\n\r\n".encode() + (DEMO / name).read_bytes() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        server.base + "/ingest", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **AUTH},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as res:
        job = json.load(res)
    deadline = time.monotonic() + INGEST_S
    while job["state"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = server.get(f"/jobs/{job['id']}")
    assert job["state"] == "done", job


def test_page_asks_for_the_api_key_and_keeps_it(browser: Any, server: Served) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.base + "/")
    browser.execute_script("localStorage.clear()")
    browser.refresh()
    status = browser.find_element(By.ID, "status")
    form, field = browser.find_element(By.ID, "key-form"), browser.find_element(By.ID, "api-key")
    WebDriverWait(browser, 20).until(lambda d: form.is_displayed())
    assert status.text == "API key needed"
    assert browser.switch_to.active_element == field

    field.send_keys("a-wrong-key", Keys.ENTER)  # refused again: the field comes back
    WebDriverWait(browser, 20).until(lambda d: form.is_displayed())
    assert "wrong API key" in status.get_attribute("title")

    field.send_keys(API_KEY, Keys.ENTER)
    WebDriverWait(browser, 20).until(lambda d: "documents" in status.text)
    assert not form.is_displayed()
    browser.refresh()  # kept for the next visit
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 20).until(lambda d: "documents" in status.text)
    assert not browser.find_element(By.ID, "key-form").is_displayed()


def test_page_uploads_files_and_shows_progress_and_report(
    browser: Any, server: Served, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    wait = open_page(browser, server)
    before = server.get("/status")["documents"]
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"this is not a PDF at all\n")
    files = [DEMO / name for name in UPLOADED if before == 0] + [broken]
    browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in files))

    job = browser.find_element(By.ID, "job")
    wait(browser, INGEST_S).until(lambda d: job.get_attribute("data-state") in ("done", "failed"))
    lines = browser.execute_script("return window.seen.jobLines")
    report = browser.find_element(By.ID, "job-report").text
    assert job.get_attribute("data-state") == "done", (lines, report, server.log_tail())
    progress = browser.find_element(By.ID, "job-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max")
    assert any(line.startswith("Uploading") for line in lines), lines
    assert any(line.startswith(("Queued", "Indexing")) for line in lines), lines
    assert lines[-1].startswith("Done"), lines
    added = int(browser.find_element(By.CSS_SELECTOR, "#job-report .added strong").text)
    assert added == len(files) - 1, report
    failures = browser.find_element(By.CSS_SELECTOR, "#job-report .failures").text
    assert "1 failed" in failures and "broken.pdf" in failures, report

    # the page refreshes the index status and the document list after the job
    expected = before + added
    wait(browser, 10).until(
        lambda d: d.find_element(By.ID, "status").text.startswith(f"{expected} documents")
    )
    browser.find_element(By.CSS_SELECTOR, "#documents summary").click()
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#doc-list .doc-name")]
    assert set(UPLOADED) <= set(names) or before, names
    assert not js_errors(browser)


def open_a_source(browser: Any, turn: Any) -> None:
    """Open the turn's first source chip (an answer) or nearest passage (not found), and check
    the panel shows a demo file's passage."""
    from selenium.webdriver.common.by import By

    if turn.get_attribute("data-state") == "answered":
        chips = turn.find_elements(By.CSS_SELECTOR, ".answer-text .chip:not(.missing)")
        assert chips, f"an answer without a source chip: {turn.text!r}"
        chips[0].click()
        assert browser.find_element(By.ID, "source-cited").is_displayed()
        opened = chips[0]
    else:
        assert turn.find_element(By.CSS_SELECTOR, ".nf-title").text == "Not found in your documents"
        nearest = turn.find_elements(By.CSS_SELECTOR, ".nearest .passage-link")
        assert nearest, f"not found, with no nearest passages: {turn.text!r}"
        nearest[0].click()
        opened = nearest[0]
    assert "active" in opened.get_attribute("class").split()
    assert browser.find_element(By.ID, "source-panel").is_displayed()
    where = browser.find_element(By.ID, "source-where").text
    assert any(name in where for name in UPLOADED), where
    text = browser.find_element(By.ID, "source-text").text
    assert len(text) > 20, text
    for mark in browser.find_elements(By.CSS_SELECTOR, "#source-text mark"):
        assert mark.text and mark.text in text


def shown_answer(browser: Any, n: int) -> str:
    """The answer text turn n shows, without its source chips."""
    return browser.execute_script(
        "const el = document.querySelector(`.turn:nth-child(${arguments[0]}) .answer-text`)"
        ".cloneNode(true); el.querySelectorAll('.chips').forEach((c) => c.remove());"
        "return el.textContent;",
        n,
    )


def test_page_asks_streams_opens_a_source_and_follows_up(
    browser: Any, server: Served, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    upload_demo(server)
    wait = open_page(browser, server)
    box = browser.find_element(By.ID, "question")
    panel = browser.find_element(By.ID, "source-panel")

    def ask(question: str, turns: int) -> Any:
        box.send_keys(question, Keys.ENTER)  # Enter sends
        selector = f".turn:nth-child({turns})"
        wait(browser, ANSWER_S).until(lambda d: d.find_elements(
            By.CSS_SELECTOR, f"{selector}[data-state]:not([data-state=streaming])"))  # fmt: skip
        turn = browser.find_element(By.CSS_SELECTOR, selector)
        state = turn.get_attribute("data-state")
        assert state in ("answered", "not-found"), (state, turn.text, server.log_tail())
        return turn

    turn = ask(QUESTION, 1)
    first = turn.get_attribute("data-state")
    seen = browser.execute_script("return window.seen")
    assert "Searching your documents…" in seen["stages"], seen["stages"]
    assert seen["chats"][0]["stream"] is True
    assert seen["chats"][0]["messages"] == [{"role": "user", "content": QUESTION}]
    if first == "answered":
        assert any(s.startswith("Reading") for s in seen["stages"]), seen["stages"]
        assert seen["streamed"] > 0, "no answer text streamed in before the final answer"
    assert not panel.is_displayed()
    open_a_source(browser, turn)
    browser.find_element(By.ID, "source-close").click()
    assert not panel.is_displayed()

    # the follow-up sends the conversation: the question, the verified answer shown, the new one
    turn = ask(FOLLOW_UP, 2)
    sent = browser.execute_script("return window.seen.chats")[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"], sent
    assert sent[0]["content"] == QUESTION and sent[2]["content"] == FOLLOW_UP
    if first == "answered":
        verified = re.sub(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]", "", sent[1]["content"])
        assert verified.split() == shown_answer(browser, 1).split(), sent[1]
    else:
        assert sent[1]["content"] == "Not found in your documents."
    open_a_source(browser, turn)

    ActionChains(browser).move_to_element(box).perform()  # no hover left over anything
    time.sleep(0.5)  # let the scroll settle
    shot = Path(os.environ.get("SERVE_PAGE_SCREENSHOT") or tmp_path / "serve-page.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot)), shot

    # Stop: the third question is abandoned while it is being answered
    box.send_keys("What does error code E07 mean?", Keys.ENTER)
    send = browser.find_element(By.ID, "send")
    wait(browser, 20).until(lambda d: send.text == "Stop")
    send.click()
    third = browser.find_element(By.CSS_SELECTOR, ".turn:nth-child(3)")
    wait(browser, 20).until(lambda d: third.get_attribute("data-state") == "stopped")
    assert send.text == "Ask"
    assert "not kept" in third.find_element(By.CSS_SELECTOR, ".stage").text

    browser.find_element(By.ID, "new-chat").click()
    assert not browser.find_elements(By.CSS_SELECTOR, ".turn")
    assert not panel.is_displayed()
    assert browser.find_element(By.ID, "empty").is_displayed()
    assert not js_errors(browser)
