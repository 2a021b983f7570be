"""The course uses one notation, stated once in lessons/README.md ("Notation"), everywhere.

The prediction network is F_ω and the encoder BERT_θ, so the model is ŷ = F_ω(BERT_θ(x)); θ̂ is
the pre-trained θ (never the fine-tuned one), θ̃ and ω̃ are the fine-tuned parameters; vectors are
rows and multiply matrices from the left (x W, h W_p), as the code computes; layers and heads are
numbered from 1. This test reads every text a learner reads — the lessons (.md and the scripts
that print), the quizzes, the notebooks' cells, `explain`'s text and page, README.md — and fails
on the forms the course used to mix in, with the file, the line and what to write instead.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAT, TILDE = "\u0302", "\u0303"  # combining circumflex (θ̂: pre-trained), tilde (θ̃: fine-tuned)

FORBIDDEN = [
    (r"G_ω", "the prediction network is F_ω"),
    (r"F_θ", "the encoder is BERT_θ; F_ω is the prediction network"),
    (r"head_ω|encoder_θ|head_MLM", "write F_ω(BERT_θ(x)) (and F_MLM for the MLM head)"),
    (rf"ω{HAT}", "the fine-tuned ω is ω̃ (θ̂ and only θ̂ wears a hat: pre-trained)"),
    (rf"θ{HAT}\s*,\s*ω", "the fine-tuned pair is θ̃, ω̃; θ̂ is the pre-trained θ"),
    (r"θ_pre-?trained", "the pre-trained parameters are θ̂"),
    (r"W_p h", "vectors are rows: h W_p, as the code computes"),
    (r"W[₁₂] ?(x|GELU)", "vectors are rows: GELU(x W₁ + b₁) W₂, as the code computes"),
    (r"W_[qkvc] ?[xXh]\b", "vectors are rows: x W_q, pooled W_c"),
    (r"\bhead 0\b", "heads are numbered from 1 (the code's index 0 is head 1)"),
    (r"\blayer 0\b", "layers are numbered from 1 (hidden_states[0] is the embeddings)"),
]


def _texts():
    """(file, line number, line) for every line a learner reads."""
    files = [*sorted((ROOT / "lessons").glob("*.md")), *sorted((ROOT / "lessons").glob("*.py")),
             ROOT / "README.md", ROOT / "minibert" / "course" / "explain.py",
             ROOT / "minibert" / "course" / "templates" / "explain.html",
             ROOT / "minibert" / "train.py", ROOT / "minibert" / "model.py"]
    for path in files:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            yield path.relative_to(ROOT), i, line
    for path in sorted((ROOT / "minibert" / "course" / "quizzes").glob("*.json")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            yield path.relative_to(ROOT), i, line
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for c, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            for line in "".join(cell["source"]).splitlines():
                yield path.relative_to(ROOT), f"cell {c}", line


def check(lines) -> list[str]:
    """The offending lines, each with the rule it breaks."""
    found = []
    for where, line_no, line in lines:
        for pattern, instead in FORBIDDEN:
            if re.search(pattern, line):
                found.append(f"{where}:{line_no}: {line.strip()[:90]!r} — {instead}")
    return found


def test_every_text_uses_the_courses_notation():
    found = check(_texts())
    assert not found, "notation of lessons/README.md not followed:\n" + "\n".join(found)


@pytest.mark.parametrize("line", [
    "ŷ = G_ω(F_θ(x))", "(θ̂, ω̂) = argmin", "θ̂, ω̂ = argmin", "starting from θ = θ_pre-trained",
    "pooled = tanh(W_p h_[CLS] + b_p)", "x₂ = LayerNorm(x₁ + W₂ GELU(W₁ x₁ + b₁) + b₂)",
    "the heatmap (layer 1, head 0)", "ŷ = head_ω(encoder_θ(x))"])
def test_the_check_catches_the_old_forms(line):
    assert check([("lesson.md", 1, line)])


@pytest.mark.parametrize("line", [
    "ŷ = F_ω(BERT_θ(x))", "(θ̃, ω̃) = argmin over θ, ω", "starting from θ = θ̂",
    "pooled = tanh(h_[CLS] W_p + b_p)", "x₂ = LayerNorm(x₁ + GELU(x₁ W₁ + b₁) W₂ + b₂)",
    "MiniLM layer 1, head 1", "model.layers[0] is layer 1", "Q = X W_q + b_q"])
def test_the_check_lets_the_courses_forms_pass(line):
    assert not check([("lesson.md", 1, line)])


def test_the_notation_is_stated_once_in_the_lessons_readme():
    readme = (ROOT / "lessons" / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Notation", 1)[1].split("\n## ", 1)[0]
    for symbol in ("F_ω(BERT_θ(x))", f"θ{HAT}", f"θ{TILDE}", f"ω{TILDE}", "x W", "pooler",
                   "numbered from 1"):
        assert symbol in section, f"lessons/README.md's Notation section does not define {symbol}"
