"""The `minibert` command line: pretrain, finetune, predict, evaluate, demo (and teaching tools).

Every command has --help, sensible defaults and -q/--quiet; those that run a model also have
--seed and --device {cpu,gpu}. Results go to stdout; notes go through the "minibert" logger
to stderr (-q keeps only warnings). Errors that come from the user's input (a missing file, an
unknown column, a model directory without labels, a bad MINIBERT_* environment variable) are
printed as one clear line and exit with status 2, without a traceback; a closed pipe
(`minibert quiz --list | head -2`) ends the command quietly. Ctrl-C (SIGINT) and SIGTERM stop
every command cleanly: one line saying what was saved and how to go on (a training run: its
last checkpoint and --resume), exit status 130, no traceback (files are written atomically:
a stop never leaves a half-written one).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from . import backend
from .checkpoint import load_config, resolve_model_dir
from .console import get_verbosity, note, printable, printable_json, set_verbosity
from .data import FORMATS
from .version import __version__


def _setup(args) -> None:
    """Apply the options every command shares: the device and the seed."""
    if getattr(args, "device", "cpu") == "gpu":
        backend.use_backend("cupy")  # a clear BackendError without CuPy or a GPU
    backend.manual_seed(args.seed)


def _read(args, path):
    from .data import read_labelled

    column = lambda c: int(c) if args.no_header else c  # headerless files use column numbers
    return read_labelled(path, text_column=column(args.text_column),
                         label_column=column(args.label_column),
                         text_pair_column=None if args.pair_column is None
                         else column(args.pair_column),
                         header=not args.no_header, format=args.format,
                         quoting=not args.no_quoting)


# -- argument types: every value is checked while the command line is parsed, before any
# model is loaded or any data is read (a mistake must not cost an epoch)


def positive_int(text: str) -> int:
    value = int(text)  # argparse turns the ValueError into "invalid positive_int value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def seed(text: str) -> int:
    """--seed: what NumPy's generators take everywhere, 0 to 2**32 - 1 (a negative seed ended
    in NumPy's 'expected non-negative integer', which named no flag)."""
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {2**32 - 1}, not {text}")
    return value


def sequence_length(text: str) -> int:
    """--max-length: room for [CLS], a token and [SEP] at least."""
    value = int(text)
    if value < 3:
        raise argparse.ArgumentTypeError(f"must be at least 3 ([CLS] + a token + [SEP]), not "
                                         f"{text}")
    return value


def checkpoint_limit(text: str) -> int | None:
    """--save-total-limit: a count >= 1, or "all" (None: keep every checkpoint)."""
    if text.strip().lower() in ("all", "none"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a number >= 1 or 'all', got {text!r} (the latest checkpoint is always "
            "kept, to resume from; to keep none: --save-strategy no)")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def fraction(text: str) -> float:
    """A share in [0, 1)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, not {text}")
    return value


def ratio(text: str) -> float:
    """A share in [0, 1]."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def input_file(text: str) -> str:
    """An existing file (not a folder) or a named pipe (`--train <(zcat f.gz)`; each file is
    read once): checked now, not after a model has loaded."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} not found")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    if not (path.is_file() or path.is_fifo()):
        raise argparse.ArgumentTypeError(f"{text!r} is neither a file nor a pipe (a device "
                                         "or a socket?)")
    return text


def input_file_or_stdin(text: str) -> str:
    """An existing file, or - for standard input."""
    return text if text == "-" else input_file(text)


def output_folder(text: str) -> str:
    """A folder that exists or can be made, and can be written into."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, not an empty string")
    path = Path(text)
    if path.is_symlink() and not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} is a symbolic link to "
                                         f"{os.readlink(path)!r}, which does not exist: create "
                                         "that folder or remove the link")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a folder")
    existing = path.absolute()
    while not existing.exists():  # the nearest part of the path that is already there
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: cannot write into {existing} "
                                         "(permission denied)")
    return text


def label_list(text: str) -> list[str]:
    """--labels "neg,pos": non-empty, distinct names."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"label names must not be empty: {text!r}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"label names must be distinct; {twice} given twice")
    return names


def _check_columns(parser: argparse.ArgumentParser, args) -> None:
    """With --no-header, columns are numbers (0 = the first)."""
    if not getattr(args, "no_header", False):
        return
    for flag in ("text_column", "label_column", "pair_column"):
        value = getattr(args, flag)
        if value is not None and not value.isdigit():
            parser.error(f"--{flag.replace('_', '-')} {value!r}: with --no-header, columns are "
                         "0-based numbers (e.g. --text-column 0 --label-column 1)")


# -- commands ----------------------------------------------------------------------------------


def cmd_pretrain(args: argparse.Namespace) -> int:
    from .config import BertConfig
    from .data import hold_out_lines, read_text_corpus
    from .model import BertForMaskedLM, BertForPreTraining
    from .run_state import check_out_dir, latest_run_state
    from .tokenizer import Tokenizer
    from .train import pretrain_mlm, pretrain_nsp

    # --nsp: BERT's two tasks, masked LM + next-sentence prediction (needs the pooler)
    model_class, tasks = ((BertForPreTraining, "MLM + next-sentence") if args.nsp
                          else (BertForMaskedLM, "MLM"))
    _setup(args)
    check_out_dir(args.out, args.resume, args.overwrite)  # before any work
    # Held-out text, to measure what the model learned on text it never trained on: --eval,
    # or whole lines of --corpus (seeded, as transformers' run_mlm.py holds out 5 %).
    lines, held_out = read_text_corpus(args.corpus), None
    if args.eval:
        held_out = read_text_corpus(args.eval)
    elif args.validation_fraction > 0:
        lines, held_out = hold_out_lines(lines, args.validation_fraction, args.seed,
                                         minimum=2 if args.nsp else 1, source=args.corpus)
        note(f"Held out {len(held_out)} of the {len(lines) + len(held_out)} lines of "
              f"{args.corpus} for evaluation")
    saved = latest_run_state(args.out) if args.resume else None
    if saved is not None and not args.model:
        # The run's own vocabulary and model shape, not a vocabulary trained anew on a corpus
        # that may have changed (the data fingerprint then says so).
        tokenizer = Tokenizer.from_pretrained(saved)
        model = model_class(load_config(saved))
        note(f"Resuming the pre-training run in {args.out}")
    elif args.model:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = model_class.from_pretrained(args.model)
        tokenizer = Tokenizer.from_pretrained(resolve_model_dir(args.model))
        note(f"Continuing {tasks} pre-training of {args.model}")
    else:
        note(f"Training a {args.vocab_size}-token WordPiece vocabulary on {args.corpus}")
        tokenizer = Tokenizer.train(lines, vocab_size=args.vocab_size)  # not the held-out text
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=args.hidden,
                            num_hidden_layers=args.layers, num_attention_heads=args.heads,
                            intermediate_size=4 * args.hidden,
                            max_position_embeddings=max(args.max_length, 128))
        model = model_class(config)
        note(f"A fresh BERT: {args.layers} layers, hidden {args.hidden}, {args.heads} heads, "
              f"{model.num_parameters() / 1e6:.2f}M parameters; {tasks} pre-training")
    pretrain = pretrain_nsp if args.nsp else pretrain_mlm
    history = pretrain(model, tokenizer, lines, held_out, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, max_length=args.max_length,
                       seed=args.seed, out_dir=args.out, resume=args.resume,
                       progress=not args.no_progress, overwrite=args.overwrite,
                       allow_data_change=args.allow_data_change, **_save_options(args))
    evals = [e["eval"] for e in history["epochs"] if "eval" in e]
    if evals:
        first, last = evals[0], evals[-1]
        mlm = "mlm_loss" if "mlm_loss" in last else "loss"
        line = (f"Held-out MLM loss {first[mlm]:.4f} -> {last[mlm]:.4f} after "
                f"{len(evals)} epoch(s) (perplexity {last['perplexity']:.1f})")
        if "nsp_accuracy" in last:
            line += (f"; next-sentence accuracy {first['nsp_accuracy']:.3f} -> "
                     f"{last['nsp_accuracy']:.3f} (chance {last['nsp_chance']:.3f}, "
                     f"{last['num_pairs']} held-out pairs)")
        print(line)
    note(f"Saved the pre-trained model to {Path(args.out) / 'final'}")
    _save_loss_curve(history, args.out, "Pre-training loss")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from .data import class_names, train_validation_split
    from .model import BertForSequenceClassification
    from .run_state import check_out_dir
    from .train import finetune

    check_out_dir(args.out, args.resume, args.overwrite)  # before any work
    if args.unfreeze_last_layers and not args.freeze_encoder:
        raise ValueError("--unfreeze-last-layers needs --freeze-encoder (without it every layer "
                         "trains already)")
    if args.task == "token":
        return _finetune_tokens(args)
    _setup(args)
    train = _read(args, args.train)
    if args.eval:
        evaluation = _read(args, args.eval)
    elif args.validation_fraction > 0:
        train, evaluation = train_validation_split(train, args.validation_fraction, args.seed)
        note(f"Held out {len(evaluation.texts)} of the training examples for evaluation")
    else:
        evaluation = None
    labels = class_names(train)
    pooling = {} if args.pooling is None else {"pooling": args.pooling}
    model, tokenizer = _with_fresh_head(BertForSequenceClassification, args.model, labels,
                                        args.reinit_head, **pooling)
    note(f"Fine-tuning {args.model} ({_mode(args)}, {model.config.pooling} pooling, lr "
          f"{finetune_lr(args):g}) on {len(train.texts)} examples, {len(labels)} classes: "
          f"{', '.join(labels)}")
    history = finetune(model, tokenizer, train, evaluation, **_finetune_options(args))
    note(f"Saved the fine-tuned model to {Path(args.out) / 'final'}")
    _save_loss_curve(history, args.out, "Fine-tuning loss")
    return 0


def _save_loss_curve(history: dict, out: str, title: str) -> None:
    """The run's loss per step (and evaluation loss per epoch) as out/loss_curve.png, as the
    demo draws it; written atomically (never through a link)."""
    from .course.viz import loss_curve
    from .fileio import atomic_write

    path = Path(out) / "loss_curve.png"
    figure = loss_curve(history, title=title)
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=150))
    note(f"Saved the loss curve to {path}")


def _with_fresh_head(cls, model_arg: str, labels: list[str], reinit_head: bool = False,
                     **overrides):
    """The pre-trained encoder with a new head, one output per label (named in id2label), and
    its tokenizer. A model that already has a head for these classes keeps it, each row with
    its class (load_pretrained reorders the rows to the names' order). reinit_head: a trained
    head of another size or for other classes starts afresh (--reinit-head, transformers'
    ignore_mismatched_sizes) instead of being an error. overrides: config fields (pooling)."""
    from .checkpoint import class_names
    from .tokenizer import Tokenizer

    model_dir = resolve_model_dir(model_arg)
    trained_for = class_names(load_config(model_dir))
    if trained_for is not None and set(trained_for) != set(labels) and not reinit_head:
        raise ValueError(
            f"{model_dir} holds a classifier trained for the classes {trained_for}, but the "
            f"training data has {labels}: its head would give the old classes' scores new "
            "names. Add --reinit-head to train a new head for these classes (the old one is "
            "discarded), or give a base encoder as --model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = cls.from_pretrained(model_dir, id2label=dict(enumerate(labels)),
                                    ignore_mismatched_sizes=reinit_head, **overrides)
    for w in caught:  # say, once, that the new head ω starts fresh (and what was discarded)
        note(f"note: {str(w.message).splitlines()[0]}")
    return model, Tokenizer.from_pretrained(model_dir)


def _mode(args) -> str:
    if not args.freeze_encoder:
        return "full"
    if args.unfreeze_last_layers:
        return (f"frozen encoder but its last {args.unfreeze_last_layers} layer(s); the head ω "
                "trains")
    return "frozen encoder (only the head ω trains)"


# finetune's default learning rates. Full fine-tuning nudges pre-trained θ (BERT's paper:
# 2e-5 … 5e-5); a fresh head alone on a frozen encoder needs far larger steps to learn anything
# in a few epochs (lesson 14 measures it: at 5e-5 it stays near chance).
FULL_LR, FROZEN_LR = 5e-5, 1e-3


def finetune_lr(args: argparse.Namespace) -> float:
    """--lr if given, else the default for the mode (full or --freeze-encoder)."""
    if args.lr is not None:
        return args.lr
    return FROZEN_LR if args.freeze_encoder else FULL_LR


def _finetune_options(args) -> dict:
    """The TrainConfig fields the finetune command sets from its flags."""
    return dict(epochs=args.epochs, batch_size=args.batch_size, lr=finetune_lr(args),
                max_length=args.max_length, seed=args.seed, out_dir=args.out,
                resume=args.resume, overwrite=args.overwrite,
                allow_data_change=args.allow_data_change, freeze_encoder=args.freeze_encoder,
                unfreeze_last_layers=args.unfreeze_last_layers,
                weight_decay=args.weight_decay, warmup_ratio=args.warmup_ratio,
                progress=not args.no_progress, group_by_length=not args.no_group_by_length,
                **_save_options(args))


def _save_options(args) -> dict:
    """The TrainConfig fields of what a run keeps (--save-total-limit, ...)."""
    return dict(save_total_limit=args.save_total_limit, save_only_model=args.save_only_model,
                save_strategy=args.save_strategy)


def _finetune_tokens(args) -> int:
    """finetune --task token: one label per word, from CoNLL or JSON-lines files."""
    from .model import BertForTokenClassification
    from .token_data import read_token_labelled, tag_names
    from .train import finetune_tokens

    if args.pooling is not None:
        raise ValueError("--pooling chooses how a sequence classifier summarises a text; a "
                         "token classifier labels every token and pools nothing")
    _setup(args)
    train = read_token_labelled(args.train)
    if args.eval:
        evaluation = read_token_labelled(args.eval)
    elif args.validation_fraction > 0:
        order = np.random.default_rng(args.seed).permutation(len(train))
        n = max(1, round(args.validation_fraction * len(train)))
        train, evaluation = train.subset(sorted(order[n:])), train.subset(sorted(order[:n]))
        note(f"Held out {len(evaluation)} of the training sentences for evaluation")
    else:
        evaluation = None
    tags = tag_names(train.tags)
    model, tokenizer = _with_fresh_head(BertForTokenClassification, args.model, tags,
                                        args.reinit_head)
    note(f"Fine-tuning {args.model} ({_mode(args)}, lr {finetune_lr(args):g}) for one label "
          f"per word on {len(train)} sentences, {len(tags)} tags: {', '.join(tags)}")
    history = finetune_tokens(model, tokenizer, train, evaluation, **_finetune_options(args))
    note(f"Saved the fine-tuned model to {Path(args.out) / 'final'}")
    _save_loss_curve(history, args.out, "Fine-tuning loss (one label per word)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .pipeline import Classifier, Prediction, format_predictions, is_token_classifier

    _setup(args)
    texts = list(args.texts)
    if args.file == "-" or (not texts and not args.file and not _is_terminal(sys.stdin)):
        texts += _read_stdin()  # `--file -`, or texts piped in: `cat texts.txt | minibert predict`
    elif args.file:
        from .data import read_lines

        # every line, blank ones too: output row n is input line n (a blank line's row says
        # it had no text); invalid UTF-8 is an error naming file and line
        texts += read_lines(args.file)
    if not texts:
        raise ValueError("no texts to classify: give them as arguments, with --file, or on "
                         "standard input (--file -)")
    if is_token_classifier(args.model):
        return _predict_tags(args, texts)
    classifier = Classifier.from_pretrained(args.model, labels=args.labels,
                                            rename_labels=args.rename_labels)
    keep = [i for i, text in enumerate(texts) if text.strip()]  # a blank text has no class
    predicted = dict(zip(keep, classifier.predict([texts[i] for i in keep],
                                                  batch_size=args.batch_size,
                                                  progress=not args.no_progress), strict=True))
    predictions = [predicted.get(i, Prediction(text, None, {})) for i, text in enumerate(texts)]
    if args.json:
        for p in predictions:
            print(json.dumps({"text": p.text, "label": p.label,
                              "probabilities": p.probabilities or None}))
    else:
        print(format_predictions(predictions))
    return 0


def _no_labels_for_tags(args: argparse.Namespace) -> None:
    if args.labels or args.rename_labels:
        raise ValueError("--labels names the classes of a sequence classifier; a token "
                         "classifier's tags are in its config.json")


def _is_terminal(stream: TextIO | None) -> bool:
    isatty = getattr(stream, "isatty", None)
    return stream is None or bool(isatty and isatty())


def _read_stdin() -> list[str]:
    """The texts on standard input, one per line, as `--file` reads a file's."""
    from .data import split_lines

    return [] if sys.stdin is None else split_lines(sys.stdin.read())


def _predict_tags(args, texts: list[str]) -> int:
    """predict with a token classifier: the tag of every word, and the entities."""
    from .pipeline import Tagger, format_tags

    _no_labels_for_tags(args)
    results = Tagger.from_pretrained(args.model).tag(texts, batch_size=args.batch_size,
                                                     progress=not args.no_progress)
    if args.json:
        for r in results:
            print(json.dumps({"text": r.text, "words": r.words, "tags": r.tags,
                              "entities": [list(e) for e in r.entities]}))
    else:
        print(format_tags(results))
    return 0


def _evaluate_tokens(args) -> int:
    """evaluate with a token classifier: entity-level precision, recall and F1."""
    from .evaluation import evaluate_tokens
    from .pipeline import Tagger
    from .token_data import read_token_labelled

    _no_labels_for_tags(args)
    data = read_token_labelled(args.data)
    tagger = Tagger.from_pretrained(args.model)
    m = evaluate_tokens(tagger.model, tagger.tokenizer, data, batch_size=args.batch_size,
                        max_length=tagger.max_length, progress=not args.no_progress)
    if args.json:
        print(_json_line({"model": str(args.model), "data": str(args.data), **m}))
        return 0
    print(f"{len(data)} sentences, {m['num_entities']} entities: precision {m['precision']:.4f}, "
          f"recall {m['recall']:.4f}, F1 {m['f1']:.4f}; word accuracy {m['word_accuracy']:.4f}")
    print(f"{'type':<12} {'precision':>9} {'recall':>7} {'F1':>7} {'true':>5} {'predicted':>9}")
    for kind, t in m["per_type"].items():
        print(f"{printable(kind):<12} {t['precision']:>9.4f} {t['recall']:>7.4f} {t['f1']:>7.4f} "
              f"{t['num_true']:>5} {t['num_pred']:>9}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate
    from .metrics import format_confusion
    from .pipeline import Classifier, is_token_classifier

    _setup(args)
    if is_token_classifier(args.model):
        return _evaluate_tokens(args)
    data = _read(args, args.data)
    classifier = Classifier.from_pretrained(args.model, labels=args.labels,
                                            rename_labels=args.rename_labels)
    _check_default_names(classifier, data, args)
    metrics = evaluate(classifier.model, classifier.tokenizer, data,
                       batch_size=args.batch_size, max_length=classifier.max_length,
                       progress=not args.no_progress)
    if args.json:
        print(_json_line({"model": str(args.model), "data": str(args.data),
                          "labels": classifier.labels, **metrics}))
        return 0
    print(f"{len(data.texts)} examples: accuracy {metrics['accuracy']:.4f}, "
          f"macro-F1 {metrics['macro_f1']:.4f}, loss {metrics['loss']:.4f}")
    print(format_confusion(metrics["confusion_matrix"],
                           [printable(name) for name in classifier.labels]))
    return 0


def _json_line(obj: dict) -> str:
    """One line of strict JSON: a number that is not finite (a loss of nan, when nothing was
    labelled) becomes null, which every JSON reader accepts."""
    def finite(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [finite(v) for v in x]
        return x
    return printable_json(json.dumps(finite(obj), allow_nan=False, ensure_ascii=False))


def _check_default_names(classifier, data, args) -> None:
    """A model whose classes are only Hugging Face's LABEL_0, LABEL_1, ... predicts those
    names; data labelled with real names then needs them given (--labels), in id order."""
    from .checkpoint import class_names

    if args.labels is not None or class_names(classifier.model.config) is not None:
        return
    unknown = sorted(set(map(str, data.labels)) - set(classifier.labels))
    if unknown:
        raise ValueError(f"{args.model} names its classes only {', '.join(classifier.labels)} "
                         f"(Hugging Face's defaults), but {args.data} has the labels "
                         f"{unknown[:5]}: give the model's class names in id order with "
                         "--labels NAME,NAME,...")


def cmd_demo(args: argparse.Namespace) -> int:
    from .course.demo import run

    _setup(args)
    run(out_dir=args.out, epochs=args.epochs, seed=args.seed, from_scratch=args.from_scratch,
        max_train=args.max_train, progress=not args.no_progress)
    return 0


def cmd_autograd(args: argparse.Namespace) -> int:
    from .course.autograd_demo import run

    run()
    return 0


def cmd_exercises(args: argparse.Namespace) -> int:
    from .course import exercises as ex

    root = ex.project_root()
    target = args.target[0] if args.target else None
    if args.action in ("status", "grade"):
        return _exercises_progress(args, root)
    if len(args.target) > 1:
        raise ValueError(f"minibert exercises {args.action}: takes one argument, got "
                         f"{len(args.target)}")
    if args.action == "list":
        for e in ex.find_exercises(root):
            print(f"{e.id:>5}  {e.path}:{e.begin + 1}\n       {e.hint}")
        return 0
    if args.action == "build":
        if not target:
            raise ValueError("minibert exercises build: give the folder to write, e.g. DIR")
        made = ex.build(Path(target), root)
        print(f"Wrote a learner copy to {target} with {len(made)} exercises stubbed out.")
        if made:
            print(ex.build_instructions(Path(target), made))
        return 0
    if args.action == "check":
        if not target:
            raise ValueError("minibert exercises check: give an exercise id, e.g. 6.2")
        return ex.check(target, root)
    ex.verify(root)  # "verify"
    return 0


def _exercises_progress(args, root: Path) -> int:
    from .course import progress

    if args.action == "status":
        if len(args.target) > 1:
            raise ValueError("minibert exercises status: takes one folder (grade takes many)")
        status = progress.progress(Path(args.target[0]) if args.target else root,
                                   args.timeout, exercise=args.exercise)
        print(progress.format_status(status))
        return 0
    if not args.target:
        raise ValueError("minibert exercises grade: give the learner copies, e.g. copies/*")
    if args.csv:
        progress.check_csv_target(Path(args.csv))  # before the (long) work starts
    stopped = None
    with _sigterm_as_interrupt():
        try:
            rows = progress.grade([Path(t) for t in args.target], args.timeout, reference=root,
                                  log=lambda m: print(m, file=sys.stderr),
                                  copy_timeout=args.copy_timeout, exercise=args.exercise)
        except progress.GradingInterrupted as e:  # every process of the grading has ended
            rows, stopped = e.rows, e
    if rows:
        print(progress.format_grades(rows))
    if args.csv and rows:
        progress.write_csv(rows, Path(args.csv))
        print(f"wrote {len(rows)} rows to {args.csv}")
    if stopped:
        print(f"minibert exercises grade: stopped: {stopped.graded} of {stopped.total} copies "
              "graded (shown above); no process of the grading is left", file=sys.stderr)
        return 130
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .course.explain import check_html_target, format_text, trace, write_html

    _setup(args)
    if args.html:  # check the output file before the model runs
        check_html_target(args.html)
    t = trace(args.text, args.model, max_length=args.max_length)
    print(format_text(t))
    if args.html:
        write_html(t, args.html)
        print(f"\nwrote {args.html}: open it in a browser (no network needed)")
    return 0


def cmd_quiz(args: argparse.Namespace) -> int:
    from .course import quiz

    if args.list:
        for name in quiz.lessons():
            print(f"{int(name[:2]):>3}  {name[3:].replace('_', ' '):<24} "
                  f"{len(quiz.load(name))} questions")
        return 0
    if args.lesson is not None:
        quiz.resolve_lesson(args.lesson)  # an unknown lesson: a clear error before any question
    with _sigterm_as_interrupt():
        try:
            right, asked = quiz.run(args.lesson)
        except KeyboardInterrupt:  # quiz.run has printed the score so far
            return 130
    return 0 if asked else 1


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does, while the block runs (so a command
    stops the same clean way for both); the previous handler comes back afterwards."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")  # _run's message tells the two apart

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- the parser --------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2**32 - 1 "
                   "(default 0)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="cpu (NumPy, default) or gpu (CuPy on an NVIDIA GPU)")


def _columns(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-column", default="text", help="column with the text (default text)")
    p.add_argument("--label-column", default="label", help="column with the label (default "
                   "label)")
    p.add_argument("--pair-column", default=None, help="column with a second text, for "
                   "sentence-pair tasks")
    p.add_argument("--no-header", action="store_true", help="the file has no header row: give "
                   "columns as numbers (e.g. --text-column 0 --label-column 1)")
    p.add_argument("--format", choices=FORMATS, default=None, help="the data format "
                   "(default: from the extension .tsv/.csv/.jsonl); label-text: a label, "
                   "whitespace, then the text on each line (TREC's .label files)")
    p.add_argument("--no-quoting", action="store_true", help='in TSV/CSV, a " is just a '
                   "character (default: fields may be quoted, as in CSV)")


def _no_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars (they are shown "
                   "only on a terminal or in a notebook; TQDM_DISABLE=1 also turns them off)")


# The conventions every command follows, applied once to all of them by _conventions:
# every flag says what it does and its default, and the names a transformers user types
# (TrainingArguments) work in the commands that train.
FLAG_HELP = {  # flags several commands share: one meaning, one text
    "--epochs": "passes over the training data",
    "--batch-size": "examples per step",
    "--lr": "peak learning rate of AdamW, reached after the warm-up",
    "--weight-decay": "AdamW's decoupled weight decay (never on biases and LayerNorm)",
    "--warmup-ratio": "share of all steps that warm the learning rate up from 0",
    "--max-length": "tokens per text, [CLS] and [SEP] included; longer texts are truncated",
    "--vocab-size": "size of the new WordPiece vocabulary",
    "--layers": "encoder layers of the new BERT",
    "--hidden": "hidden size of the new BERT",
    "--heads": "attention heads per layer of the new BERT",
    "--out": "output folder",
}
# TrainingArguments' names, and those of transformers' example scripts run_glue.py and
# run_mlm.py (whose --train_file is pretrain's --corpus).
TRANSFORMERS_NAMES = {"--lr": "--learning_rate", "--epochs": "--num_train_epochs",
                      "--batch-size": "--per_device_train_batch_size", "--out": "--output_dir",
                      "--model": "--model_name_or_path", "--train": "--train_file",
                      "--corpus": "--train_file", "--eval": "--validation_file",
                      "--max-length": "--max_seq_length"}
TRAINING_COMMANDS = ("demo", "pretrain", "finetune")


def _conventions(commands: dict[str, argparse.ArgumentParser]) -> None:
    """Give every command -q/--quiet; give every flag its help text and shown default; add the
    transformers names to the commands that train; let each command report its own errors."""
    for name, p in commands.items():
        p.add_argument("-q", "--quiet", action="store_true", help="print only results, warnings "
                       "and errors: no notes, no progress bars")
        for action in list(p._actions):  # argparse has no public list of a parser's arguments
            flag = next((f for f in action.option_strings if f.startswith("--")), None)
            if flag is None or action.help == argparse.SUPPRESS:
                continue
            if action.help is None:
                action.help = FLAG_HELP[flag]  # a KeyError here: give the new flag a help text
            shows_default = action.nargs != 0 and action.default not in (None,
                                                                        argparse.SUPPRESS)
            if shows_default and "default" not in action.help:
                action.help += " (default: %(default)s)"
            alias = TRANSFORMERS_NAMES.get(flag)
            if alias and name in TRAINING_COMMANDS:
                # another name of the same option (one type check, one `required`); argparse
                # has no public way to add one. Errors and the usage line name the first.
                p._option_string_actions[alias] = action
                action.help += f"; also {alias}"
        p.set_defaults(command_parser=p)  # main() reports errors with this command's usage


def _label_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", type=label_list, default=None, help="comma-separated class "
                   "names in id order, for a model folder whose config.json names none")
    p.add_argument("--rename-labels", action="store_true", help="let --labels replace the "
                   "names the model already has (without it, names that differ are an error)")


def _run_folder(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its "
                   "last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run that --out holds "
                   "(without it, an --out that holds a run is refused)")
    p.add_argument("--allow-data-change", action="store_true", help="with --resume: continue "
                   "although the data or vocabulary differ from the run's")
    # transformers' names (save_total_limit, ...) are spelt both ways, as a transformers user
    # types them and in this CLI's style
    p.add_argument("--save-total-limit", "--save_total_limit", type=checkpoint_limit,
                   default=2, help="checkpoint folders to keep: the latest (to resume from) and "
                   "the best, then the most recent others; 1: the latest only; all: every "
                   "epoch's")
    p.add_argument("--save-only-model", "--save_only_model", action="store_true",
                   help="checkpoints without the optimizer's state (a third of the size); "
                   "--resume then refuses them")
    p.add_argument("--save-strategy", "--save_strategy", choices=["epoch", "no"],
                   default="epoch", help="epoch: a checkpoint folder after every epoch; no: "
                   "none, only history.json and final/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minibert",
        description="BERT from scratch in NumPy: pre-train, fine-tune, predict, evaluate.")
    parser.add_argument("--version", action="version", version=f"minibert {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="fine-tune all-MiniLM-L6-v2 on support tickets and "
                       "classify new ones (the main demo)")
    p.add_argument("--out", type=output_folder, default="minibert-demo", help="output folder "
                   "(default minibert-demo)")
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--max-train", type=positive_int, default=None, help="use only this many "
                   "training tickets (quick runs)")
    p.add_argument("--from-scratch", action="store_true", help="skip the real weights: "
                   "pre-train a small BERT on the tickets first")
    _no_progress(p)
    _common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("pretrain", help="MLM pre-training on a text file (one document per line)")
    p.add_argument("--corpus", type=input_file, required=True, help="text file, one document or "
                   "paragraph a line")
    p.add_argument("--model", default=None, help="continue from this model (directory or "
                   "shortcut name); default: a fresh small BERT with a new vocabulary")
    p.add_argument("--out", type=output_folder, default="runs/pretrain", help="output folder")
    p.add_argument("--vocab-size", type=positive_int, default=8000)
    p.add_argument("--layers", type=positive_int, default=2)
    p.add_argument("--hidden", type=positive_int, default=128)
    p.add_argument("--heads", type=positive_int, default=2)
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--lr", type=positive_float, default=5e-4)
    p.add_argument("--max-length", type=sequence_length, default=128)
    p.add_argument("--eval", type=input_file, default=None, help="held-out text file (one "
                   "paragraph a line): evaluated after every epoch (MLM loss, perplexity; "
                   "with --nsp also next-sentence accuracy)")
    p.add_argument("--validation-fraction", type=fraction, default=0.05, help="without --eval: "
                   "hold out this share of the lines of --corpus for that evaluation (default "
                   "0.05; 0: train on every line, evaluate nothing)")
    _run_folder(p)
    _no_progress(p)
    p.add_argument("--nsp", action="store_true", help="also train next-sentence prediction "
                   "(BertForPreTraining: pairs of sentences cut from --corpus, half real next "
                   "sentences, half random; each line is a paragraph)")
    _common(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("finetune", help="fine-tune a pre-trained encoder + a new classifier "
                       "head on labelled TSV/CSV/JSONL (one label per text), or on CoNLL/JSONL "
                       "with --task token (one label per word)")
    p.add_argument("--task", choices=["sequence", "token"], default="sequence",
                   help="sequence: one label per text (default); token: one tag per word, "
                   "e.g. named entities (files: CoNLL 'word<TAB>tag' or JSONL with 'tokens' "
                   "and 'tags')")
    p.add_argument("--train", type=input_file, required=True, help="labelled training file "
                   "(.tsv/.csv/.jsonl; with --task token .conll/.jsonl)")
    p.add_argument("--eval", type=input_file, default=None, help="labelled evaluation file")
    p.add_argument("--validation-fraction", type=fraction, default=0.0, help="without --eval: "
                   "hold out this share of --train for evaluation")
    p.add_argument("--model", default="all-MiniLM-L6-v2", help="pre-trained model directory or "
                   "shortcut name (default all-MiniLM-L6-v2)")
    p.add_argument("--out", type=output_folder, default="runs/finetune", help="output folder")
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--lr", type=positive_float, default=None, help="peak learning rate of "
                   f"AdamW, reached after the warm-up (default: {FULL_LR:g}; {FROZEN_LR:g} with "
                   "--freeze-encoder)")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.01)
    p.add_argument("--warmup-ratio", type=ratio, default=0.1)
    p.add_argument("--max-length", type=sequence_length, default=128)
    p.add_argument("--freeze-encoder", action="store_true", help="train only the new head; the "
                   f"encoder is a fixed feature extractor. A head alone needs a larger --lr "
                   f"(the default becomes {FROZEN_LR:g}) and often more --epochs than full "
                   "fine-tuning (lesson 14)")
    p.add_argument("--unfreeze-last-layers", type=non_negative_int, default=0, metavar="K",
                   help="with --freeze-encoder: the last K encoder layers train too (partial "
                   "unfreezing, lesson 17)")
    p.add_argument("--no-group-by-length", action="store_true", help="plain shuffled batches "
                   "(default: batches of texts of similar length, less padding, faster)")
    p.add_argument("--pooling", choices=["cls", "mean"], default=None, help="how the classifier "
                   "summarises a text: cls = BERT's pooler on the [CLS] vector, mean = the "
                   "average of the token vectors (how all-MiniLM-L6-v2 was trained); saved in "
                   "config.json (default: the model's own, cls for a pre-trained encoder)")
    _run_folder(p)
    p.add_argument("--reinit-head", action="store_true", help="when --model's classifier head "
                   "has another number of classes, start it afresh (transformers' "
                   "ignore_mismatched_sizes) instead of stopping with an error")
    _no_progress(p)
    _columns(p)
    _common(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("predict", help="classify texts with a fine-tuned model (a token "
                       "classifier tags every word)")
    p.add_argument("texts", nargs="*", help="texts to classify")
    p.add_argument("--model", required=True, help="folder written by finetune (its final/)")
    p.add_argument("--file", type=input_file_or_stdin, default=None, help="a text file, one "
                   "text per line; - reads standard input (as do texts piped in without "
                   "arguments); output row n is line n (a blank line gets a row without a "
                   "prediction: label null in --json)")
    _label_flags(p)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    _no_progress(p)
    _common(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="accuracy, macro-F1 and confusion matrix on labelled "
                       "data (entity precision/recall/F1 for a token classifier)")
    p.add_argument("--model", required=True, help="folder written by finetune (its final/)")
    p.add_argument("--data", type=input_file, required=True, help="labelled file "
                   "(.tsv/.csv/.jsonl; for a token classifier .conll/.jsonl)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--json", action="store_true", help="the metrics as one JSON object "
                   "(confusion matrix and class names included) instead of the tables")
    _label_flags(p)
    _columns(p)
    _no_progress(p)
    _common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("autograd", help="walk through autograd on a tiny graph")
    p.set_defaults(func=cmd_autograd)

    p = sub.add_parser("explain", help="follow one text through the model: tokens, "
                       "embeddings, every layer, attention, [CLS], pooled vector, P(class)")
    p.add_argument("text", help="the text to follow, e.g. \"I was charged twice\"")
    p.add_argument("--model", default="all-MiniLM-L6-v2", help="a base encoder or a fine-tuned "
                   "classifier folder such as minibert-demo/final (default all-MiniLM-L6-v2)")
    p.add_argument("--html", default=None, help="also write one self-contained page with "
                   "interactive attention heatmaps to this .html file")
    p.add_argument("--max-length", type=sequence_length, default=128, help="truncate the text "
                   "to this many tokens (default 128)")
    _common(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("quiz", help="self-check questions on a lesson, asked and checked in "
                       "the terminal")
    p.add_argument("lesson", nargs="?", default=None, help="lesson number or name, e.g. 3 "
                   "(default: every lesson, in order)")
    p.add_argument("--list", action="store_true", help="list the quizzes and stop")
    p.set_defaults(func=cmd_quiz)

    p = sub.add_parser("exercises", help="learner exercises: list, build DIR, check ID, "
                       "status [DIR], grade DIR..., verify")
    p.add_argument("action", choices=["list", "build", "check", "status", "grade", "verify"])
    p.add_argument("target", nargs="*", help="folder for build and status, exercise id for "
                   "check, learner copies for grade")
    p.add_argument("--csv", default=None, help="grade: also write the report to this CSV file")
    p.add_argument("--timeout", type=positive_float, default=60.0, help="status/grade: "
                   "seconds one test may run before it is stopped and scored 'timeout' "
                   "(default 60)")
    p.add_argument("--copy-timeout", type=positive_float, default=900.0, help="grade: seconds "
                   "for a whole copy, restarts included; what has not run by then scores "
                   "'timeout' (default 900)")
    p.add_argument("--exercise", default="all", metavar="ID", help="status/grade: only the "
                   "tests of this exercise, e.g. 3.1 (default all)")
    p.set_defaults(func=cmd_exercises)
    _conventions(sub.choices)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command line; returns the exit status (0 done, 2 a mistake in the input)."""
    verbosity = get_verbosity()
    try:
        try:
            return _run(argv)  # (--help and --version end in SystemExit)
        finally:
            if sys.stdout is not None:
                sys.stdout.flush()  # a closed pipe shows here, not in the flush at exit
    except BrokenPipeError:
        return _stdout_closed()
    finally:
        set_verbosity(verbosity)  # -q lasts for one command (main may run in a notebook)


def _stdout_closed() -> int:
    """The reader of stdout went away (`minibert quiz --list | head -2`): stop quietly. As
    Python's documentation advises, stdout is pointed at devnull, so that flushing it at exit
    does not fail a second time."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout has no file descriptor (captured by a test)
        pass
    return 128 + 13  # 141: how a shell reports a command that a closed pipe stopped (SIGPIPE)


def exit_if_command(error: Exception) -> None:
    """In the `minibert` command (its script, or python -m minibert), end with `error` on one
    line and status 2; elsewhere (a library user's import) return, so that it is raised."""
    # `python -m minibert`: while the package imports, sys.argv[0] is "-m"; orig_argv says more
    orig = getattr(sys, "orig_argv", [])
    dash_m = [b for a, b in zip(orig, orig[1:], strict=False) if a == "-m"]
    if Path(sys.argv[0]).stem == "minibert" or dash_m[:1] in (["minibert"], ["minibert.cli"]):
        print(printable(f"minibert: error: {error}", keep_newlines=True), file=sys.stderr)
        raise SystemExit(2)


def _run(argv: list[str] | None) -> int:
    from .backend import BackendError
    from .checkpoint import CheckpointError
    from .course.exercises import ExerciseError
    from .course.quiz import QuizError
    from .data import DataError
    from .nn import StateDictError
    from .train import TrainingDivergedError

    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # argparse would report these with the top-level usage, not the command's
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    _check_columns(args.command_parser, args)
    set_verbosity("warning" if args.quiet else "info")
    np.set_printoptions(precision=4, suppress=True)
    try:
        with _sigterm_as_interrupt():
            return args.func(args)
    except BrokenPipeError:
        raise  # not the user's mistake: main ends quietly
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (see _sigterm_as_interrupt)
        how = "SIGTERM" if stop.args == ("SIGTERM",) else "Ctrl-C"
        print(printable(f"minibert {args.command}: stopped ({how}); {_after_stop(args)}"),
              file=sys.stderr)
        return 130
    except (OSError, DataError, CheckpointError, BackendError, ExerciseError, QuizError,
            StateDictError, TrainingDivergedError, ValueError) as e:
        # the message may quote a file's contents or a name from a model folder
        print(printable(f"minibert {args.command}: error: {e}", keep_newlines=True),
              file=sys.stderr)
        return 2


def _after_stop(args: argparse.Namespace) -> str:
    """What a stopped command leaves behind, and how to go on (one clause)."""
    from .run_state import RunStateError, latest_run_state

    out = getattr(args, "out", None)
    if args.command in ("pretrain", "finetune") and out:
        try:
            folder = latest_run_state(out)
        except (RunStateError, OSError):
            folder = None
        if folder is not None:
            return (f"the last finished epoch is saved in {folder}; continue with the same "
                    "command and --resume")
        return f"no checkpoint had been saved yet in {out}; run the command again"
    if args.command == "demo":
        return f"run `minibert demo` again to start over (it replaces its run in {out})"
    if args.command == "exercises" and args.action == "build":
        return "no learner copy was written (the partial one was removed); run it again"
    return "nothing was written; run the command again"


if __name__ == "__main__":
    sys.exit(main())
