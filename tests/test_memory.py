"""Inference memory is bounded by one batch, whatever the number of texts (issue 12, item 6).

Under no_grad nothing may keep a batch's activations alive once the batch is done: no backward
closure, no reference cycle (`predict` over 10k texts once peaked at 4.5 GB, and `evaluate`
was killed at 24 GB, because activations lived in cycles until the garbage collector ran). The
garbage collector is switched off while measuring, so only memory that reference counting
frees counts as freed: a cycle shows up at once instead of whenever the collector happens to
run. Peaks are measured with tracemalloc, which sees NumPy's allocations. (With the autograd
of before the fix, predict here peaked at 399 MB against a bound of 10 MB.)
"""

import gc
import tracemalloc

import numpy as np
import pytest

import minibert
from minibert.config import BertConfig
from minibert.data import LabelledData
from minibert.evaluation import evaluate
from minibert.model import BertForSequenceClassification
from minibert.pipeline import Classifier
from minibert.tokenizer import Tokenizer

WORDS = "the card was charged twice my parcel is late please reset password refund".split()
N_TEXTS = 5000


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=12)) for _ in range(n)]


@pytest.fixture(scope="module")
def classifier():
    tok = Tokenizer.train(texts(200), vocab_size=80)
    minibert.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=32, id2label={0: "a", 1: "b", 2: "c"})
    return Classifier(BertForSequenceClassification(config), tok, ["a", "b", "c"])


def peak_bytes(fn) -> int:
    """The most memory (bytes) allocated at once while fn() runs, beyond what was there."""
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gc.enable()


def test_predict_memory_is_bounded_by_one_batch(classifier):
    many = texts(N_TEXTS, seed=1)
    classifier.predict_proba(many[:32])  # warm up: tokenizer cache, lazily built tables
    one_batch = peak_bytes(lambda: classifier.predict_proba(many[:32], batch_size=32))
    all_texts = peak_bytes(lambda: classifier.predict(many, batch_size=32))
    # The results themselves grow with the texts (a Prediction each): allow ~1 kB per text.
    bound = 2 * one_batch + 1000 * N_TEXTS
    assert all_texts < bound, (
        f"predict over {N_TEXTS} texts peaked at {all_texts / 1e6:.1f} MB; one batch at "
        f"{one_batch / 1e6:.1f} MB (bound {bound / 1e6:.1f} MB)")


def test_evaluate_memory_is_bounded_by_one_batch(classifier):
    many = texts(N_TEXTS, seed=2)
    labels = [["a", "b", "c"][i % 3] for i in range(N_TEXTS)]
    model, tok = classifier.model, classifier.tokenizer
    small = LabelledData(many[:64], labels[:64])
    evaluate(model, tok, small, batch_size=64, max_length=32)  # warm up
    one_batch = peak_bytes(lambda: evaluate(model, tok, small, batch_size=64, max_length=32))
    data = LabelledData(many, labels)
    all_rows = peak_bytes(lambda: evaluate(model, tok, data, batch_size=64, max_length=32))
    bound = 2 * one_batch + 200 * N_TEXTS  # labels and predictions: a few bytes per row
    assert all_rows < bound, (
        f"evaluate over {N_TEXTS} rows peaked at {all_rows / 1e6:.1f} MB; one batch at "
        f"{one_batch / 1e6:.1f} MB (bound {bound / 1e6:.1f} MB)")
