"""Evaluation measures that are not covered with training: the pseudo-log-likelihood."""

import numpy as np
import pytest

import minibert
from minibert import functional as F
from minibert import no_grad
from minibert.config import BertConfig
from minibert.data import IGNORE_INDEX
from minibert.evaluation import evaluate_mlm, pseudo_log_likelihood
from minibert.model import BertForMaskedLM
from minibert.tokenizer import Tokenizer

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "my order never arrived"] * 5


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(TEXTS, vocab_size=60)


def tiny_mlm(tok):
    minibert.manual_seed(0)
    return BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, hidden_size=16,
                                      num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32, max_position_embeddings=16))


@pytest.mark.exercise("17.1")
def test_pseudo_log_likelihood_masks_each_token_in_turn(tok):
    model = tiny_mlm(tok).eval()
    text = "the dog sat on my mat"
    result = pseudo_log_likelihood(model, tok, text)
    enc = tok.encode(text)
    ids = np.array(enc.input_ids)
    expected = []
    with no_grad():  # by the definition: one sequence at a time, token i replaced by [MASK]
        for i in range(1, len(ids) - 1):  # not [CLS] (first) or [SEP] (last)
            masked = ids.copy()
            masked[i] = tok.mask_token_id
            logp = F.log_softmax(model(masked[None]).logits, axis=-1).numpy()[0]
            expected.append(logp[i, ids[i]])
    assert [t for t, _ in result["tokens"]] == enc.tokens[1:-1]
    np.testing.assert_allclose([s for _, s in result["tokens"]], expected, atol=1e-5)
    assert np.isclose(result["pll"], sum(expected), atol=1e-4)
    assert np.isclose(result["per_token"], result["pll"] / len(expected))


def test_pseudo_log_likelihood_keeps_the_mode_and_refuses_an_empty_text(tok):
    model = tiny_mlm(tok).train()
    pseudo_log_likelihood(model, tok, "the cat")
    assert model.training
    with pytest.raises(ValueError, match="no ordinary token"):
        pseudo_log_likelihood(model, tok, "")


@pytest.mark.exercise("16.1")
def test_evaluate_mlm_weights_each_batch_by_its_masked_tokens(tok):
    model = tiny_mlm(tok).eval()
    rng = np.random.default_rng(0)
    ids = rng.integers(5, tok.vocab_size, size=(4, 8))
    labels = np.full((4, 8), IGNORE_INDEX)
    labels[0, 1], labels[1, 2:5], labels[3, 6] = ids[0, 1], ids[1, 2:5], ids[3, 6]
    batches = [{"input_ids": ids[:2], "attention_mask": np.ones((2, 8), dtype=np.int64),
                "token_type_ids": np.zeros((2, 8), dtype=np.int64), "labels": labels[:2]},
               {"input_ids": ids[2:], "attention_mask": np.ones((2, 8), dtype=np.int64),
                "token_type_ids": np.zeros((2, 8), dtype=np.int64), "labels": labels[2:]}]
    with no_grad():  # by hand: -log P of every masked token, averaged over all five of them
        logp = F.log_softmax(model(ids).logits, axis=-1).numpy()
    rows, cols = np.nonzero(labels != IGNORE_INDEX)
    expected = -logp[rows, cols, labels[rows, cols]].mean()
    result = evaluate_mlm(model, batches)
    assert result["masked_tokens"] == 5
    assert np.isclose(result["loss"], expected, atol=1e-5)  # 4 + 1 tokens: not a mean of means
    assert np.isclose(result["perplexity"], np.exp(expected), rtol=1e-5)
    nothing = dict(batches[0], labels=np.full((2, 8), IGNORE_INDEX))
    assert evaluate_mlm(model, [nothing, batches[1]])["masked_tokens"] == 1
