"""Self-check quizzes: a few questions at the end of every lesson, asked and checked.

    minibert quiz 3          the questions of lesson 3, in the terminal
    minibert quiz            every lesson's, in course order

The questions are data, one JSON file per lesson in minibert/course/quizzes/ (NN_name.json, named
after the lesson). Each question has a `type`, a `prompt`, one right answer and an
`explanation` shown after the learner answers:

    choice   "options": [...], "answer": index of the right option
    order    "steps": [...] in the right order (shown shuffled; answer with their letters)
    match    "pairs": [[part, meaning], ...] (meanings shown shuffled; answer with letters)
    shape    "answer": [15, 768]
    number   "answer": 1540, optional "tolerance" (absolute)
    decision "probabilities": {class: p, ...}, "answer": the class the decision rule picks

Shape and number answers carry "computed_by": the name of a test in tests/test_quiz.py that
computes the same value with minibert itself (runs the model, reads the shape), so a quiz can
never contradict the code. In a notebook, `ask(lesson, n)` prints a question and
`check(lesson, n, answer)` checks an answer.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

QUIZ_DIR = Path(__file__).resolve().parent / "quizzes"
TYPES = ("choice", "order", "match", "shape", "number", "decision")
LETTERS = string.ascii_lowercase


class QuizError(ValueError):
    """A malformed quiz file, or an unknown lesson or question."""


@dataclass(frozen=True)
class Question:
    lesson: str  # "03_attention"
    number: int  # 1-based within the lesson
    data: dict

    @property
    def kind(self) -> str:
        return self.data["type"]

    def _shuffled(self, items: list) -> list[int]:
        """A fixed order to show `items` in (for steps and pairs never the right one; the right
        option of a multiple choice lands anywhere): the same for every learner, so a teacher
        can talk about "option c"."""
        order = list(range(len(items)))
        rng = random.Random(f"{self.lesson}/{self.number}")
        while len(order) > 1 and order == sorted(order):
            rng.shuffle(order)
        return order

    def text(self) -> str:
        """The question as shown to the learner, with its options and how to answer."""
        d = self.data
        lines = [f"Q{self.number}. {d['prompt']}"]
        if self.kind == "choice":
            options = d["options"]
            lines += [f"  {LETTERS[k]}) {options[i]}"
                      for k, i in enumerate(self._shuffled(options))]
            lines.append("Answer with one letter.")
        elif self.kind == "order":
            steps = d["steps"]
            lines += [f"  {LETTERS[k]}) {steps[i]}" for k, i in enumerate(self._shuffled(steps))]
            lines.append("Answer with the letters in the right order, separated by spaces.")
        elif self.kind == "match":
            pairs = d["pairs"]
            lines += [f"  {k + 1}. {left}" for k, (left, _) in enumerate(pairs)]
            lines += [f"  {LETTERS[k]}) {pairs[i][1]}"
                      for k, i in enumerate(self._shuffled(pairs))]
            lines.append("Answer with the letter of each numbered item's meaning, in the items' "
                         "order, separated by spaces.")
        elif self.kind == "decision":
            lines += [f"  {name:<24} {p}" for name, p in d["probabilities"].items()]
            lines.append("Answer with the class name.")
        elif self.kind == "shape":
            lines.append("Answer with the shape, e.g. (2, 3).")
        else:
            lines.append("Answer with a number.")
        return "\n".join(lines)

    def right_answer(self) -> str:
        """The right answer, written the way the learner would type it."""
        d = self.data
        if self.kind == "choice":
            shown = self._shuffled(d["options"])
            return f"{LETTERS[shown.index(d['answer'])]}) {d['options'][d['answer']]}"
        if self.kind == "order":
            shown = self._shuffled(d["steps"])
            return " ".join(LETTERS[shown.index(i)] for i in range(len(shown)))
        if self.kind == "match":
            shown = self._shuffled(d["pairs"])
            return " ".join(LETTERS[shown.index(i)] for i in range(len(shown)))
        if self.kind == "shape":
            return str(tuple(d["answer"]))
        return str(d["answer"])

    def check(self, answer: str) -> bool:
        """Is `answer` (what the learner typed, or a value) right? QuizError when it cannot be
        read as an answer to this kind of question (the message says what is expected)."""
        d = self.data
        text = str(answer).strip()
        if self.kind == "choice":
            letters = _letters(text, len(d["options"]), 1)
            return self._shuffled(d["options"])[LETTERS.index(letters[0])] == d["answer"]
        if self.kind in ("order", "match"):
            items = d["steps"] if self.kind == "order" else d["pairs"]
            letters = _letters(text, len(items), len(items))
            if len(set(letters)) != len(letters):
                raise QuizError("use each letter once")
            return " ".join(letters) == self.right_answer()
        if self.kind == "decision":
            names = {n.lower(): n for n in d["probabilities"]}
            if text.lower() not in names:
                raise QuizError(f"answer with one of: {', '.join(d['probabilities'])}")
            return names[text.lower()] == d["answer"]
        if self.kind == "shape":
            numbers = re.findall(r"-?\d+", text) if isinstance(answer, str) else list(answer)
            if not numbers:
                raise QuizError("answer with a shape, e.g. (2, 3)")
            return [int(n) for n in numbers] == list(d["answer"])
        try:
            value = float(text)
        except ValueError:
            raise QuizError("answer with a number, e.g. 0.5") from None
        return abs(value - float(d["answer"])) <= float(d.get("tolerance", 0))

    @property
    def explanation(self) -> str:
        return self.data["explanation"]


def _letters(text: str, n: int, count: int) -> list[str]:
    """Read `count` option letters (a.. the n-th) from text such as "c a b", "cab" or "c,a,b"."""
    letters = [c for c in text.lower() if c.isalnum()]
    allowed = LETTERS[:n]
    if len(letters) != count or any(c not in allowed for c in letters):
        what = "one letter" if count == 1 else f"{count} letters"
        raise QuizError(f"answer with {what} from {allowed[0]} to {allowed[-1]}")
    return letters


# -- the files ---------------------------------------------------------------------------------


def lessons() -> list[str]:
    """The lessons that have a quiz, in course order: ["01_tokenization", ...]."""
    return sorted(p.stem for p in QUIZ_DIR.glob("[0-9][0-9]_*.json"))


def resolve_lesson(lesson: str | int) -> str:
    """3, "3", "03" or "03_attention" -> "03_attention"."""
    names = lessons()
    key = str(lesson).strip()
    if key.isdigit():
        found = [n for n in names if int(n[:2]) == int(key)]
    else:
        found = [n for n in names if n == key or n[3:] == key]
    if not found:
        raise QuizError(f"no quiz for lesson {lesson!r}; there are: "
                        + ", ".join(str(int(n[:2])) for n in names))
    return found[0]


def load(lesson: str | int) -> list[Question]:
    """The questions of one lesson, checked for the shape of each question type."""
    name = resolve_lesson(lesson)
    path = QUIZ_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise QuizError(f"{path}: not valid JSON: {e}") from None
    questions = [Question(name, i + 1, q) for i, q in enumerate(data.get("questions", []))]
    for q in questions:
        _validate(q, path)
    return questions


_REQUIRED = {"choice": ("options", "answer"), "order": ("steps",), "match": ("pairs",),
             "shape": ("answer",), "number": ("answer",),
             "decision": ("probabilities", "answer")}


def _validate(q: Question, path: Path) -> None:
    where = f"{path.name} question {q.number}"
    d = q.data
    if d.get("type") not in TYPES:
        raise QuizError(f"{where}: type must be one of {TYPES}, got {d.get('type')!r}")
    for key in ("prompt", "explanation", *_REQUIRED[q.kind]):
        if not d.get(key) and d.get(key) != 0:
            raise QuizError(f"{where}: needs a non-empty {key!r}")


def get(lesson: str | int, number: int) -> Question:
    questions = load(lesson)
    if not 1 <= number <= len(questions):
        raise QuizError(f"lesson {lesson} has questions 1 to {len(questions)}, not {number}")
    return questions[number - 1]


# -- asking: the terminal and notebooks --------------------------------------------------------


def run(lesson: str | int | None = None, ask: Callable[[str], str] = input,
        say: Callable[[str], object] = print, tries: int = 3) -> tuple[int, int]:
    """Ask the questions of one lesson (or of all, in order); returns (right, asked).

    An answer that cannot be read is asked again (up to `tries` times); end of input stops
    the quiz and reports the score so far. Ctrl-C prints the score so far on one line and
    raises KeyboardInterrupt again for the caller (the command exits with status 130)."""
    names = [resolve_lesson(lesson)] if lesson is not None else lessons()
    right = asked = 0
    try:
        for name in names:
            questions = load(name)
            say(f"\n== Lesson {int(name[:2])}: {name[3:].replace('_', ' ')} "
                f"({len(questions)} questions) ==")
            for q in questions:
                say("\n" + q.text())
                for _ in range(tries):
                    try:
                        ok = q.check(ask("> "))
                        break
                    except QuizError as e:
                        say(f"  ({e})")
                else:
                    ok = False
                    say("  (no answer read; moving on)")
                asked += 1
                right += ok
                say("  " + verdict(q, ok))
    except EOFError:
        say("\n(end of input)")
    except KeyboardInterrupt:
        say(f"\nquiz stopped: {right} of {asked} right so far.")
        raise
    say(f"\n{right} of {asked} right.")
    return right, asked


def verdict(q: Question, ok: bool) -> str:
    """"Right." or "Not quite." with the right answer, then the explanation."""
    if ok:
        return f"Right. {q.explanation}"
    answer = q.right_answer().rstrip(".")
    return f"Not quite. The answer: {answer}. {q.explanation}"


def ask(lesson: str | int, number: int) -> None:
    """Print one question (for a notebook cell); answer it with check(lesson, number, ...)."""
    q = get(lesson, number)
    print(f"Lesson {int(q.lesson[:2])} · {q.text()}")


def check(lesson: str | int, number: int, answer: str) -> bool | None:
    """Check an answer in a notebook: prints right/not quite and the explanation. An answer
    of None (not answered yet) prints a reminder and returns None."""
    q = get(lesson, number)
    if answer is None:
        print(f"Lesson {int(q.lesson[:2])} · Q{number}: set `answer` to your answer and run "
              "this cell again.")
        return None
    ok = q.check(answer)
    print(verdict(q, ok))
    return ok
