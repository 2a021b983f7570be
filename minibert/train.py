"""Training loops: masked-language-model pre-training and fine-tuning for classification.

Fine-tuning is the workflow of the course (notation of lessons/README.md). A model = an encoder
BERT_θ with parameters θ (``model.bert``: embeddings and layers) + a prediction network F_ω with
parameters ω (the pooler, if the model pools by [CLS], and the classifier). θ starts from the
pre-trained θ̂ and the classifier from fresh random values; both are trained on labelled data:

    θ̃, ω̃ = argmin over θ, ω of  mean over the training set of  loss(F_ω(BERT_θ(x)), y)

With ``freeze_encoder=True`` only ω trains (θ̃ = θ̂): the encoder is a fixed feature extractor.

One training step, the same in both loops (``TrainingRun.train_step``):

    zero_grad -> forward -> loss -> backward -> clip the gradient norm -> AdamW step (lr from
    the warm-up/decay schedule)

Both loops are a ``TrainingRun``. After every epoch: evaluation (evaluation.py), the history
written to ``history.json`` and the run's state (model + optimizer + data generator +
epoch/step + history, see run_state.py) written atomically into ``out_dir``. ``resume=True``
continues from the last saved state exactly as if the run had never stopped: same seed -> the
same numbers, bit for bit, on CPU and on GPU. At the end the model is saved in from_pretrained
format to ``out_dir/final``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import backend
from . import functional as F
from .autograd import tensor
from .backend import Array
from .console import note, progress_bar, result, warn
from .data import (
    DataError,
    LabelledData,
    MLMCollator,
    NSPCollator,
    batch_indices,
    chunk_corpus,
    class_names,
    classification_batch,
    count_truncated,
    encode_labels,
    next_sentence_pairs,
    read_text_corpus,
    token_lengths,
)
from .evaluation import evaluate, evaluate_mlm, evaluate_pretraining, evaluate_tokens
from .nn import Linear
from .optim import AdamW, clip_grad_norm, global_grad_norm, linear_warmup_decay, weight_decay_groups
from .run_state import (
    FINAL,
    RunStateError,
    best_run_state,
    check_out_dir,
    fingerprint,
    latest_run_state,
    load_run_state,
    lock_out_dir,
    own_folder,
    prepare_out_dir,
    read_trainer_state,
    run_state_file,
    save_run_state,
    unlock_out_dir,
    write_json,
)
from .token_data import TokenLabelledData, encode_tags, tag_names, token_classification_batch

if TYPE_CHECKING:  # for type hints only (no import at run time)
    from .model import (
        BertForMaskedLM,
        BertForPreTraining,
        BertForSequenceClassification,
        BertForTokenClassification,
        BertPreTrainedModel,
    )
    from .tokenizer import Tokenizer

# ----------------------------------------------------------------------------------------------
# Options


@dataclass
class TrainConfig:
    """Every option of the training loops (the CLI maps its flags onto these fields).

    epochs, batch_size   passes over the data; examples per step
    lr                   peak learning rate of AdamW (reached after the warm-up)
    weight_decay         AdamW's decoupled decay λ (never on biases and LayerNorm)
    warmup_ratio         share of all steps spent warming the learning rate up from 0
    max_grad_norm        clip the global gradient norm to this (None: no clipping)
    max_length           tokens per sequence, [CLS]/[SEP] included (at most the model's
                         max_position_embeddings; longer texts are truncated/chunked)
    seed                 seeds dropout, shuffling and masking: same seed, same run
    out_dir              where history.json and checkpoints go (None: nothing is written);
                         a folder that already holds a run is refused, unless resume or
                         overwrite
    resume               continue from the last checkpoint in out_dir
    overwrite            replace the run in out_dir (only what a run writes is removed)
    allow_data_change    resume although the training data or vocabulary differ from the
                         run's (a note says so); by default that is an error
    save_strategy        "epoch": a checkpoint folder after every epoch (to resume from);
                         "no": none, only history.json and final/ (transformers' names)
    save_total_limit     checkpoint folders kept: the latest and the best, then the most
                         recent others (2: the latest and the best; 1: the latest; None: all)
    save_only_model      checkpoints without the optimizer's state (for MiniLM 91 MB instead
                         of 273 MB each); a run cannot resume from them
    freeze_encoder       fine-tuning only: train the head ω (and the pooler, when the head
                         reads it), keep the encoder θ (embeddings, layers) fixed
    unfreeze_last_layers with freeze_encoder: the last k encoder layers train too (partial
                         unfreezing, the road between frozen (0) and full (all L layers))
    mlm_probability      pre-training only: share of tokens chosen for prediction
    eval_batch_size      examples per forward pass during evaluation
    group_by_length      batch examples of similar length together (shuffled within groups
                         of 50 batches, as transformers' group_by_length): less padding, a
                         faster epoch; False: plain shuffled batches
    adam_betas, adam_eps AdamW's β1, β2 and ε
    progress             show a progress bar (where a person watches: see console.py)
    """

    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    max_length: int = 128
    seed: int = 0
    out_dir: str | None = None
    resume: bool = False
    overwrite: bool = False
    allow_data_change: bool = False
    save_strategy: str = "epoch"
    save_total_limit: int | None = 2
    save_only_model: bool = False
    freeze_encoder: bool = False
    unfreeze_last_layers: int = 0
    mlm_probability: float = 0.15
    eval_batch_size: int = 64
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    progress: bool = True
    group_by_length: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) \
                or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not 0.0 < self.lr < math.inf:
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.max_length < 3:
            raise ValueError(f"max_length must be >= 3 ([CLS], a token and [SEP]), got "
                             f"{self.max_length}")
        if not 0.0 <= self.warmup_ratio <= 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1], got {self.warmup_ratio}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {self.max_grad_norm}")
        if self.out_dir is not None and not str(self.out_dir).strip():
            raise ValueError("out_dir is empty: give a folder, or None to write nothing")
        if self.resume and not self.out_dir:
            raise ValueError("resume=True needs out_dir (where the checkpoint is)")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other")
        if self.save_strategy not in ("epoch", "no"):
            raise ValueError(f"save_strategy must be 'epoch' (a checkpoint after every epoch) "
                             f"or 'no' (none), got {self.save_strategy!r}")
        if self.save_total_limit is not None and (
                isinstance(self.save_total_limit, bool) or self.save_total_limit < 1):
            raise ValueError(f"save_total_limit must be >= 1 (the latest checkpoint is always "
                             f"kept, to resume from) or None (keep all), got "
                             f"{self.save_total_limit!r}; to keep none, save_strategy='no'")
        if self.unfreeze_last_layers < 0:
            raise ValueError(f"unfreeze_last_layers must be >= 0, got {self.unfreeze_last_layers}")
        if self.unfreeze_last_layers and not self.freeze_encoder:
            raise ValueError("unfreeze_last_layers needs freeze_encoder=True (without it every "
                             "layer trains already)")
        self.adam_betas = tuple(self.adam_betas)


# Options that do not change the numbers a run produces (allowed to differ on resume).
_COSMETIC = {"resume", "progress", "out_dir", "eval_batch_size", "overwrite",
             "allow_data_change", "save_strategy", "save_total_limit", "save_only_model"}


def _make_config(config: TrainConfig | None, options: dict) -> TrainConfig:
    config = config or TrainConfig()
    unknown = set(options) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise TypeError(f"unknown training option(s): {sorted(unknown)}")
    return dataclasses.replace(config, **options)


class TrainingDivergedError(RuntimeError):
    """The loss (or the gradient norm) became NaN or infinite; training was stopped."""


# ----------------------------------------------------------------------------------------------
# Random state. Two generators drive a run, and a resumed run must draw what an uninterrupted
# one would have drawn from both:
#   - the data generator (NumPy, on the host) shuffles and masks. Its state is plain numbers:
#     every checkpoint saves it and resume restores it.
#   - the backend's global generator (NumPy or CuPy) draws dropout masks. CuPy cannot export
#     the state of its cuRAND generator, so instead of saving it the loop re-seeds it at the
#     start of every epoch from (seed, epoch). Checkpoints fall on epoch ends, so a resumed run
#     starts its next epoch with the very generator the uninterrupted run had, on either backend.


def _epoch_seed(seed: int, epoch: int) -> int:
    """The dropout generator's seed for `epoch` (0-based) of a run seeded with `seed`."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


# ----------------------------------------------------------------------------------------------
# One training run, shared by pre-training and fine-tuning


class TrainingRun:
    """One run of the training loop: optimizer, schedule, random state, history, saved state.

        run = TrainingRun(model, cfg, num_examples, {"task": "finetune"})
        history = run.fit(make_batch, evaluate, tokenizer)

    info: what the history says about the run besides its config, steps and epochs
    log: called with a dict after every step and every epoch (see ``finetune``)
    data: what the run trains on (texts and labels, or token ids) and vocab: the tokenizer's
        vocabulary; their fingerprints are saved, and resuming on other ones is refused
    make_batch(indices) -> dict of arrays (input_ids, attention_mask, token_type_ids, labels)
    evaluate() -> dict of metrics, or None
    """

    def __init__(self, model: BertPreTrainedModel, cfg: TrainConfig, num_examples: int, info: dict,
                 log: Callable[[dict], None] | None = None, data: Any = None, vocab: Any = None,
                 lengths: Sequence[int] | np.ndarray | None = None):
        self.model, self.cfg, self.num_examples, self.log = model, cfg, num_examples, log
        # tokens per example, for batches of similar length (cfg.group_by_length)
        self.lengths = lengths if cfg.group_by_length else None
        self.history = {**info, "config": _jsonable(dataclasses.asdict(cfg)), "steps": [],
                        "epochs": []}
        self.data_rng = np.random.default_rng(cfg.seed)  # shuffling and masking (see above)
        self.steps_per_epoch = math.ceil(num_examples / cfg.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.warmup_steps = int(round(cfg.warmup_ratio * self.total_steps))
        self.epoch, self.step = 0, 0  # epochs completed, optimizer steps taken
        self.last_saved: Path | None = None
        self.tokenizer = None  # set by fit: saved beside the model in every epoch's folder
        self.fingerprint = {"data": fingerprint(data), "vocab": fingerprint(vocab)}
        self.lock = None  # out_dir's run lock, held while fit runs
        if cfg.out_dir:  # refused now, before the caller prepares its data; nothing is made
            check_out_dir(cfg.out_dir, cfg.resume, cfg.overwrite)

    def take_out_dir(self) -> None:
        """Lock out_dir for this run (another run there is an error naming it), then make it
        ready: clear the earlier run when overwrite, remove what a killed run left."""
        cfg = self.cfg
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
        self.lock = lock_out_dir(cfg.out_dir)  # one writer: another run here is an error
        removed = prepare_out_dir(cfg.out_dir, cfg.resume, cfg.overwrite, locked=True)
        if removed:
            note(f"note: removed from {cfg.out_dir}: {', '.join(removed)} "
                 f"({'the earlier run' if cfg.overwrite else 'left by a stopped run'})")

    def release(self) -> None:
        """Let another run use out_dir (fit does this when it ends, however it ends)."""
        unlock_out_dir(self.cfg.out_dir, self.lock)
        self.lock = None

    def fit(self, make_batch: Callable, evaluate: Callable, tokenizer: Tokenizer) -> dict:
        """Train (from the last saved state when cfg.resume), then leave the model in eval
        mode and save it with its tokenizer to out_dir/final. Returns the history."""
        try:
            if self.cfg.out_dir:
                self.take_out_dir()
            return self._fit(make_batch, evaluate, tokenizer)
        finally:
            self.release()

    def _fit(self, make_batch: Callable, evaluate: Callable, tokenizer) -> dict:
        self.tokenizer = tokenizer
        frozen = (_freeze_encoder(self.model, self.cfg.unfreeze_last_layers)
                  if self.cfg.freeze_encoder else [])
        try:
            groups = weight_decay_groups(self.model.named_parameters(), self.cfg.weight_decay)
            self.params = [p for g in groups for p in g["params"]]
            if not self.params:
                raise ValueError("no trainable parameters: every parameter has "
                                 "requires_grad=False")
            self.optimizer = AdamW(groups, lr=self.cfg.lr, betas=self.cfg.adam_betas,
                                   eps=self.cfg.adam_eps, weight_decay=self.cfg.weight_decay)
            if self.cfg.resume:
                self.resume()
            while self.epoch < self.cfg.epochs:
                self.run_epoch(make_batch, evaluate)
        finally:
            for p in frozen:  # leave the model as we found it
                p.requires_grad = True
        self.model.eval()
        if self.cfg.out_dir:
            _save_final(self.model, tokenizer, own_folder(Path(self.cfg.out_dir) / FINAL))
            best = best_run_state(self.cfg.out_dir)
            if best is not None:
                note(f"note: final/ holds the last epoch's model; the best epoch by {best[1]} "
                     f"({best[2]:.4f}) is kept in {best[0]}")
        return self.history

    def train_mode(self) -> None:
        """Dropout on; with a frozen encoder (a fixed feature extractor) not inside it."""
        self.model.train()
        if self.cfg.freeze_encoder:
            self.model.bert.eval()
            for layer in _last_layers(self.model, self.cfg.unfreeze_last_layers):
                layer.train()  # an unfrozen layer trains as in full fine-tuning

    # -- one epoch, one step -------------------------------------------------------------------
    def run_epoch(self, make_batch: Callable, evaluate: Callable) -> None:
        cfg = self.cfg
        self.train_mode()
        backend.manual_seed(_epoch_seed(cfg.seed, self.epoch))  # dropout masks (see above)
        batches = batch_indices(self.num_examples, cfg.batch_size, self.data_rng, self.lengths)
        bar = progress_bar(len(batches), f"epoch {self.epoch + 1}/{cfg.epochs}", cfg.progress)
        start, tokens, padded, loss_sum = time.perf_counter(), 0, 0, 0.0
        unread = []  # steps whose loss and gradient norm are still on the GPU (see read_steps)
        try:
            for n, indices in enumerate(batches, 1):
                batch = make_batch(indices)
                loss, grad_norm = self.train_step(batch)
                tokens += int(batch["attention_mask"].sum())  # real tokens
                padded += int(batch["attention_mask"].size)  # what the model computed on
                tokens_per_s = tokens / max(time.perf_counter() - start, 1e-9)
                unread.append({"event": "step", "epoch": self.epoch + 1, "step": self.step,
                               "loss": loss, "lr": self.optimizer.lr, "grad_norm": grad_norm,
                               "tokens_per_s": tokens_per_s})
                if not _on_device(loss) or n % READ_EVERY == 0 or n == len(batches):
                    for record in self.read_steps(unread):
                        loss_sum += record["loss"]
                        self.history["steps"].append(
                            {k: v for k, v in record.items() if k not in ("event", "tokens_per_s")})
                        bar.update(1)
                        bar.set_postfix(loss=f"{record['loss']:.4f}",
                                        tok_s=f"{record['tokens_per_s']:,.0f}")
                        if self.log is not None:
                            self.log(record)
                    unread = []
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        self.epoch += 1
        summary = {"epoch": self.epoch, "step": self.step, "train_loss": loss_sum / len(batches),
                   "tokens_per_s": tokens / max(seconds, 1e-9),
                   "padded_tokens_per_s": padded / max(seconds, 1e-9), "seconds": seconds}
        metrics = evaluate()  # in eval mode; the model's modes are restored afterwards
        if metrics is not None:
            summary["eval"] = metrics
        self.history["epochs"].append(summary)
        result(_epoch_line(summary))  # a result: on stdout
        if self.log is not None:
            self.log(dict(summary, event="epoch"))
        self.save(summary)

    def read_steps(self, records: list[dict]) -> Iterator[dict]:
        """The step records, one by one, with their loss and gradient norm as Python floats,
        checked.

        On the CPU they are numbers already. On the GPU they are 0-d arrays there, and reading
        one makes the host wait until the GPU has computed it: the loop reads READ_EVERY steps
        at once (one copy), so that the host can queue the next steps meanwhile. A NaN or inf
        is then found a few steps late, but still before anything is saved.
        """
        values = [r[k] for r in records for k in ("loss", "grad_norm")]
        if any(_on_device(v) for v in values):
            xp = backend.get_array_module(*values)
            values = backend.to_numpy(xp.stack([xp.asarray(v, dtype=np.float64)
                                                for v in values])).tolist()
        for r, loss, grad_norm in zip(records, values[::2], values[1::2], strict=True):
            self.check_finite("loss", float(loss), r["step"])
            self.check_finite("gradient norm", float(grad_norm), r["step"])
            yield dict(r, loss=float(loss), grad_norm=float(grad_norm))

    def train_step(self, batch: dict) -> tuple[float | Array, float | Array]:
        """zero_grad -> forward -> loss -> backward -> clip -> AdamW step.
        Returns (loss, gradient norm): floats, or on the GPU 0-d arrays there (see read_steps).
        """
        self.optimizer.lr = self.cfg.lr * linear_warmup_decay(self.step, self.warmup_steps,
                                                              self.total_steps)
        # BEGIN EXERCISE 8.2: one training step. Zero the gradients; run the model on the batch
        #   with labels=batch["labels"] (and the batch's other labels: **self.extra_labels(batch));
        #   loss = the loss's array (out.loss.data); check it is finite (self.check_finite);
        #   backward; clip the gradient norm (clip_grad_norm, or global_grad_norm when
        #   max_grad_norm is None) and check it; optimizer step; self.step += 1.
        self.optimizer.zero_grad()
        out = self.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                         labels=batch["labels"], **self.extra_labels(batch))
        loss = out.loss.data
        self.check_finite("loss", loss)
        out.loss.backward()
        if self.cfg.max_grad_norm is not None:
            grad_norm = clip_grad_norm(self.params, self.cfg.max_grad_norm)
        else:
            grad_norm = global_grad_norm(self.params)
        self.check_finite("gradient norm", grad_norm)
        self.optimizer.step()
        self.step += 1
        # END EXERCISE
        return loss, grad_norm

    @staticmethod
    def extra_labels(batch: dict) -> dict:
        """Labels of a second task a model takes besides `labels`: next_sentence_label for
        BertForPreTraining's next-sentence prediction. Empty for every other batch."""
        return {k: batch[k] for k in ("next_sentence_label",) if k in batch}

    def check_finite(self, what: str, value: float | Array, step: int | None = None) -> None:
        """Stop at the first NaN/inf, before it reaches the weights or the saved state.

        value: a number, or a 0-d array. On the GPU the check waits for `read_steps` (asking
        the GPU now would make the host wait for it at every step); `step` is then the step
        the value belongs to (default: the one being taken).
        """
        if _on_device(value) or math.isfinite(value):
            return
        step = self.step + 1 if step is None else step
        if self.last_saved is not None:
            kept = f"the last good checkpoint, {self.last_saved} (after epoch " \
                   f"{self.epoch}), is kept; resume from it with a lower learning rate"
            best = best_run_state(self.cfg.out_dir)
            if best is not None and best[0] != self.last_saved:
                kept += f" (the best epoch by {best[1]} is kept in {best[0]})"
        else:
            kept = "no checkpoint had been written yet"
        raise TrainingDivergedError(
            f"training stopped: the {what} is {float(value)} at step {step} "
            f"(epoch {self.epoch + 1}); {kept}"
        )

    # -- the run's state on disk (run_state.py) -------------------------------------------------
    def save(self, summary: dict) -> None:
        """Save this epoch's folder. Its score, to keep the best folder too: the evaluation
        loss, or the training loss without evaluation (lower is better)."""
        if not self.cfg.out_dir:
            return
        if self.cfg.save_strategy == "no":  # no checkpoint folder, only the history
            write_json(Path(self.cfg.out_dir) / "history.json", self.history)
            return
        if "loss" in summary.get("eval", {}):
            score = ("eval loss", summary["eval"]["loss"])
        else:
            score = ("train loss", summary["train_loss"])
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "config": _jsonable(dataclasses.asdict(self.cfg)),
            "data_rng": _jsonable(self.data_rng.bit_generator.state),
            "history": self.history,
            "backend": backend.get_backend(),
            "fingerprint": self.fingerprint,
        }
        self.last_saved = save_run_state(self.cfg.out_dir, f"checkpoint-epoch-{self.epoch}",
                                         self.model, self.optimizer, state, self.tokenizer,
                                         score, self.cfg.save_total_limit,
                                         self.cfg.save_only_model)
        write_json(Path(self.cfg.out_dir) / "history.json", self.history)

    def check_same_data(self, saved: dict | None, folder: Path) -> None:
        """Resuming on other data or another vocabulary would silently mix two runs."""
        if not isinstance(saved, dict):  # a folder of an older minibert: nothing to compare
            return
        differ = [k for k in ("data", "vocab") if saved.get(k) != self.fingerprint[k]]
        if not differ:
            return
        what = " and ".join({"data": "the training data", "vocab": "the vocabulary"}[k]
                            for k in differ)
        if self.cfg.allow_data_change:
            warn(f"warning: {what} differ from the run saved in {folder}; resuming anyway "
                 "(allow_data_change): the result mixes two runs")
            return
        raise RunStateError(
            f"{run_state_file(folder)}: {what} differ from the run being resumed "
            "(fingerprints differ). Resume with the same data, start a new run in another "
            "folder or with --overwrite, or pass allow_data_change=True (--allow-data-change)"
        )

    def resume(self) -> None:
        folder = latest_run_state(self.cfg.out_dir)
        if folder is None:
            warn(f"warning: resume=True but {self.cfg.out_dir} holds no checkpoint; starting "
                 "anew")
            return
        # other data or vocabulary: an error before the weights are even read
        self.check_same_data(read_trainer_state(folder).get("fingerprint"), folder)
        state = load_run_state(folder, self.model, self.optimizer)
        changed = sorted(k for k, v in state["config"].items()
                         if k not in _COSMETIC and _jsonable(getattr(self.cfg, k, None)) != v)
        if changed:
            warn(f"warning: resuming with changed options {changed}; "
                 "the run will differ from an uninterrupted one")
        self.epoch, self.step = state["epoch"], state["step"]
        self.history.clear()
        self.history.update(state["history"])
        self.data_rng.bit_generator.state = state["data_rng"]
        self.last_saved = folder
        note(f"resumed from {folder} (epoch {self.epoch}, step {self.step})")


# On the GPU, the loop reads the steps' losses and gradient norms this many steps at a time
# (and at the end of each epoch): see TrainingRun.read_steps.
READ_EVERY = 10


def _on_device(value) -> bool:
    """A value still on the GPU (a 0-d CuPy array), not yet read by the host."""
    return backend.is_device_array(value)


def _epoch_line(s: dict) -> str:
    line = (f"epoch {s['epoch']}: train loss {s['train_loss']:.4f}, "
            f"{s['tokens_per_s']:,.0f} tokens/s ({s['padded_tokens_per_s']:,.0f} with padding)")
    ev = s.get("eval")
    if ev:
        parts = [f"{k} {ev[k]:.4f}" for k in ("loss", "mlm_loss", "accuracy", "macro_f1",
                                              "perplexity", "word_accuracy", "precision",
                                              "recall", "f1") if k in ev]
        if "nsp_accuracy" in ev:  # next-sentence prediction, against always saying one label
            parts.append(f"nsp_accuracy {ev['nsp_accuracy']:.4f} (chance {ev['nsp_chance']:.4f})")
        line += "; eval " + ", ".join(parts)
    return line


def _jsonable(obj):
    return json.loads(json.dumps(obj))


def _effective_max_length(model, cfg: TrainConfig) -> int:
    return min(cfg.max_length, model.config.max_position_embeddings)


# ----------------------------------------------------------------------------------------------
# Fine-tuning


def finetune(model: BertForSequenceClassification, tokenizer: Tokenizer, train_data: LabelledData,
             eval_data: LabelledData | None = None,
             config: TrainConfig | None = None, log: Callable[[dict], None] | None = None,
             **options: Any) -> dict:
    """Fine-tune a sequence classifier (e.g. BertForSequenceClassification) on labelled data.

    model: its encoder ``model.bert`` holds the pre-trained θ; its head ω is freshly
        initialised when the model is built (call ``minibert.manual_seed(seed)`` before
        ``from_pretrained(dir, num_labels=C)`` to make ω reproducible). A model loaded from an
        MLM checkpoint works: from_pretrained discards the pre-training head.
    train_data / eval_data: LabelledData (see ``minibert.data.read_labelled``). Label names are
        mapped to ids in sorted order and stored in ``model.config.id2label``; a label in
        eval_data that training never saw is an error.
    config / **options: a TrainConfig and/or its fields (options override config).
    log: called with a dict after every step ({"event": "step", "loss", "lr", ...}) and every
        epoch ({"event": "epoch", "train_loss", "eval": {...}, ...}).

    Returns the history: {"task", "labels", "config", "steps": [...], "epochs": [...]}; also
    written to out_dir/history.json, and the final model + tokenizer to out_dir/final.
    """
    cfg = _make_config(config, options)
    if len(train_data) == 0:
        raise DataError(f"{train_data.source}: no training examples")
    label2id = _label_map(model, class_names(train_data), train_data.source)
    if eval_data is not None:
        encode_labels(eval_data.labels, label2id, eval_data.source)  # fail now, not after epoch 1
    max_length = _effective_max_length(model, cfg)
    n_long = count_truncated(tokenizer, train_data, max_length)
    if n_long:
        note(f"note: {n_long} of {len(train_data)} training texts are longer than "
              f"{max_length} tokens and will be truncated")

    def make_batch(indices):
        return classification_batch(tokenizer, train_data, indices, label2id, max_length)

    def evaluate_fn():
        if eval_data is None:
            return None
        return evaluate(model, tokenizer, eval_data, label2id, cfg.eval_batch_size, max_length,
                        progress=cfg.progress)

    lengths = (token_lengths(tokenizer, train_data.texts, train_data.text_pairs, max_length)
               if cfg.group_by_length else None)
    run = TrainingRun(model, cfg, len(train_data), {"task": "finetune", "labels": list(label2id)},
                      log, data=[train_data.texts, train_data.text_pairs, train_data.labels],
                      vocab=_vocabulary(tokenizer), lengths=lengths)
    return run.fit(make_batch, evaluate_fn, tokenizer)


def finetune_tokens(model: BertForTokenClassification, tokenizer: Tokenizer,
                    train_data: TokenLabelledData,
                    eval_data: TokenLabelledData | None = None,
                    config: TrainConfig | None = None, log: Callable[[dict], None] | None = None,
                    **options: Any) -> dict:
    """Fine-tune a token classifier (BertForTokenClassification): one label per word.

    train_data / eval_data: TokenLabelledData (see ``minibert.token_data.read_token_labelled``).
    The tags become ids with O first, then B-/I- of each type in sorted order
    (``token_data.tag_names``), stored in ``model.config.id2label``. Each word's tag is the
    label of its first word piece; the other pieces, [CLS], [SEP] and padding get -100 and do
    not count in the loss. Evaluation reports entity-level precision, recall and F1.
    Otherwise as ``finetune`` (options, history, checkpoints, out_dir/final).
    """
    cfg = _make_config(config, options)
    if len(train_data) == 0:
        raise DataError(f"{train_data.source}: no training sentences")
    label2id = _label_map(model, tag_names(train_data.tags), train_data.source)
    if eval_data is not None:
        encode_tags(eval_data.tags, label2id, eval_data.source)  # fail now, not after epoch 1
    max_length = _effective_max_length(model, cfg)

    def make_batch(indices):
        return token_classification_batch(tokenizer, train_data, indices, label2id, max_length)

    everything = make_batch(range(len(train_data)))
    truncated, lengths = everything["num_truncated"], everything["attention_mask"].sum(axis=1)
    if truncated:
        note(f"note: {truncated} words of the training sentences do not fit in {max_length} "
             "tokens; they are left out")

    def evaluate_fn():
        if eval_data is None:
            return None
        return evaluate_tokens(model, tokenizer, eval_data, cfg.eval_batch_size, max_length,
                               progress=cfg.progress)

    run = TrainingRun(model, cfg, len(train_data),
                      {"task": "finetune_tokens", "labels": list(label2id)}, log,
                      data=[train_data.words, train_data.tags], vocab=_vocabulary(tokenizer),
                      lengths=lengths)
    return run.fit(make_batch, evaluate_fn, tokenizer)


def _label_map(model, names: list[str], source: str) -> dict[str, int]:
    """label name -> id for this run, written into model.config (id2label/label2id).

    If the model already names exactly these labels (a fine-tuned model trained further), its
    ids are kept; otherwise `names`, in their order, become ids 0..C-1.
    """
    config = model.config
    if set(config.label2id) == set(names):
        return config.label2id
    if config.num_labels != len(names):
        raise ValueError(
            f"the model's head has {config.num_labels} outputs but {source} has "
            f"{len(names)} labels {names}; build the model with num_labels={len(names)}, e.g. "
            f"{type(model).__name__}.from_pretrained(path, num_labels={len(names)})"
        )
    config.id2label = dict(enumerate(names))  # label2id follows
    return config.label2id


def _vocabulary(tokenizer):
    """What decides how a tokenizer turns text into ids (for the run's fingerprint)."""
    return [getattr(tokenizer, "ids_to_tokens", None), getattr(tokenizer, "lowercase", None)]


def _freeze_encoder(model, unfreeze_last_layers: int = 0) -> list:
    """requires_grad=False on every trainable encoder parameter, except those of the last
    `unfreeze_last_layers` layers; returns the frozen ones (to unfreeze).

    The encoder is the embeddings and the layers. The pooler, tanh(dense(h_[CLS])), is used
    only by a sequence classifier that pools by [CLS]: there it trains with the classifier, as
    in transformers' frozen recipe (all-MiniLM-L6-v2's pooler was never trained: frozen, it
    would feed the classifier a fixed random projection). Otherwise it is frozen too.
    """
    bert = model.bert
    uses_pooler = bert.pooler is not None and getattr(model.config, "pooling", "cls") == "cls" \
        and hasattr(model, "classifier")
    fixed = [(name, p) for name, p in bert.named_parameters()
             if not (uses_pooler and name.startswith("pooler."))]
    if unfreeze_last_layers:
        L = len(bert.layers)
        if unfreeze_last_layers > L:
            raise ValueError(f"unfreeze_last_layers={unfreeze_last_layers}, but the encoder has "
                             f"only {L} layers (use at most {L}, or full fine-tuning)")
        # BEGIN EXERCISE 17.2: partial unfreezing. Keep in `fixed` only the (name, p) pairs
        #   that do not belong to the last unfreeze_last_layers layers; layer i's parameters
        #   are named "layers.{i}." (0-based, i from L - unfreeze_last_layers to L - 1)
        trained = tuple(f"layers.{i}." for i in range(L - unfreeze_last_layers, L))
        fixed = [(name, p) for name, p in fixed if not name.startswith(trained)]
        # END EXERCISE
    frozen = [p for _, p in fixed if p.requires_grad]
    for p in frozen:
        p.requires_grad = False
        p.grad = None
    return frozen


def _last_layers(model, k: int) -> list:
    """The last k layers of the model's encoder (none for k = 0)."""
    return list(model.bert.layers)[len(model.bert.layers) - k:] if k else []


def _save_final(model, tokenizer, folder: Path) -> None:
    """The trained model in from_pretrained format, with its tokenizer beside it."""
    model.save_pretrained(folder)
    if hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(folder)


# ----------------------------------------------------------------------------------------------
# The yardstick for a frozen encoder: logistic regression on fixed features


def fit_logistic_regression(features: npt.ArrayLike, labels: npt.ArrayLike,
                            num_classes: int | None = None, C: float = 1.0, steps: int = 500,
                            lr: float = 1e-2) -> Linear:
    """Multinomial logistic regression on fixed features, e.g. sentence embeddings.

    features (n, H): one row per example (``SentenceEncoder.encode``: the mean-pooled, unit-length
    vectors a frozen encoder gives); labels (n,): class ids 0 … num_classes − 1 (default: the
    largest id + 1). Returns a ``Linear`` H → num_classes: ``head(tensor(E))`` gives the logits,
    their argmax the class. It minimises the textbook L2-penalised objective

        J(W, b) = (1/n) Σᵢ CE(xᵢ W + b, yᵢ) + λ/2 ‖W‖²,    λ = 1 / (C n)

    (scikit-learn's C: a smaller C is a stronger penalty; the bias is not penalised) with
    full-batch AdamW (no decoupled weight decay: the penalty is in J) for `steps` steps at
    learning rate `lr`. J is convex: every start leads to a minimum of the same value. The
    start is a fresh ``Linear`` drawn from minibert's generator (``minibert.manual_seed``
    first for a repeatable fit). The defaults, 500 steps at lr 1e-2, bring J close to its
    minimum on features of length about 1, such as sentence embeddings (lesson 14).

    It is the yardstick of lesson 14: a frozen encoder's mean-pooled head reads the same
    features, and one that scores well below this fit has not been trained enough.
    """
    E = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels)
    if E.ndim != 2 or len(E) == 0:
        raise ValueError(f"features must be a non-empty (n, H) array, got shape {E.shape}")
    if y.shape != (len(E),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be {len(E)} integer class ids (one per row of features), "
                         f"got shape {y.shape} of {y.dtype}")
    if not np.isfinite(E).all():
        raise ValueError("features hold NaN or infinite values")
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must lie in 0 … {num_classes - 1}, got {y.min()} … {y.max()}")
    if not (math.isfinite(C) and C > 0):
        raise ValueError(f"C must be a positive number, got {C}")
    if steps < 1 or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"steps must be >= 1 and lr > 0, got steps={steps}, lr={lr}")
    head = Linear(E.shape[1], num_classes)
    opt = AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    x, lam = tensor(E), 1.0 / (C * len(E))
    # BEGIN EXERCISE 14.1: the logistic regression's fit. Each of `steps` steps: zero the
    #   gradients; J = F.cross_entropy(head(x), y) + λ/2 · (the sum of head.W's squared entries:
    #   the bias is not penalised), λ = lam; backward; one step of opt
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(head(x), y) + (head.W * head.W).sum() * (lam / 2)
        loss.backward()
        opt.step()
    # END EXERCISE
    return head


# ----------------------------------------------------------------------------------------------
# Pre-training


def pretrain_mlm(model: BertForMaskedLM | BertForPreTraining, tokenizer: Tokenizer,
                 texts: Sequence[str], eval_texts: Sequence[str] | None = None,
                 config: TrainConfig | None = None,
                 log: Callable[[dict], None] | None = None, **options: Any) -> dict:
    """Pre-train a masked language model (e.g. BertForMaskedLM) on raw text.

    texts / eval_texts: a list of lines (one document or paragraph each) or a path to a text
        file (blank lines skipped). Lines longer than max_length tokens are cut into several
        sequences. Each batch is masked afresh (15% of tokens, 80/10/10, see data.mask_tokens);
        the evaluation batches are masked once, with a fixed seed, so epochs compare fairly.
    Returns the history (per step and per epoch, eval loss and perplexity), also written to
    out_dir/history.json; checkpoints as in ``finetune``, final model to out_dir/final.
    """
    cfg = _make_config(config, options)
    if cfg.freeze_encoder:
        raise ValueError("freeze_encoder is for fine-tuning: pre-training trains the encoder")
    max_length = _effective_max_length(model, cfg)
    lines = _lines(texts)
    chunks = chunk_corpus(tokenizer, lines, max_length)
    if not chunks:
        raise DataError("pretrain_mlm: no text to train on")
    if len(chunks) > len(lines):
        note(f"note: {len(chunks) - len(lines)} extra sequences from cutting long lines into "
              f"pieces of at most {max_length} tokens ({len(chunks)} sequences in all)")

    run = TrainingRun(model, cfg, len(chunks), {"task": "pretrain_mlm",
                                                "num_sequences": len(chunks)}, log,
                      data=chunks, vocab=_vocabulary(tokenizer), lengths=[len(c) for c in chunks])
    collator = MLMCollator(tokenizer, cfg.mlm_probability, rng=run.data_rng)
    eval_batches = None
    if eval_texts is not None:
        eval_chunks = chunk_corpus(tokenizer, _lines(eval_texts), max_length)
        eval_batches = _fixed_batches(MLMCollator(tokenizer, cfg.mlm_probability,
                                                  rng=cfg.seed + 1), eval_chunks, cfg)

    def make_batch(indices):
        return collator([chunks[i] for i in indices])

    def evaluate_fn():
        return None if eval_batches is None else evaluate_mlm(model, eval_batches)

    return run.fit(make_batch, evaluate_fn, tokenizer)


def _fixed_batches(collator, items: list, cfg: TrainConfig) -> list[dict]:
    """The held-out batches, masked once by a collator with a fixed seed, so that every epoch
    is evaluated on the same masks."""
    return [collator([items[i] for i in idx])
            for idx in batch_indices(len(items), cfg.eval_batch_size)]


def _lines(texts) -> list[str]:
    """A list of lines, or a path to a text file (one document a line) read into one."""
    return read_text_corpus(texts) if isinstance(texts, str | os.PathLike) else list(texts)


def pretrain_nsp(model: BertForPreTraining, tokenizer: Tokenizer, texts: Sequence[str],
                 eval_texts: Sequence[str] | None = None, config: TrainConfig | None = None,
                 log: Callable[[dict], None] | None = None, **options: Any) -> dict:
    """Pre-train BertForPreTraining on BERT's two tasks: masked LM and next-sentence prediction.

    texts / eval_texts: a list of lines or a path to a text file; every line is a document (a
        paragraph), cut into sentences. Sentence pairs are made once, with the run's seed (half
        real next sentences, half random ones, ``data.next_sentence_pairs``); each training
        batch is masked afresh. The held-out pairs (from eval_texts, whose random B sentences
        come from eval_texts too) are made and masked once, with fixed seeds, so epochs compare
        fairly; after each epoch they give the MLM loss, the perplexity and the next-sentence
        accuracy against chance (``evaluation.evaluate_pretraining``).
    The loss is MLM loss + NSP loss; the history records it per step. Otherwise as
    ``pretrain_mlm`` (options, checkpoints, out_dir/final).
    """
    cfg = _make_config(config, options)
    if cfg.freeze_encoder:
        raise ValueError("freeze_encoder is for fine-tuning: pre-training trains the encoder")
    if not hasattr(model, "seq_relationship"):
        raise TypeError(f"pretrain_nsp trains BertForPreTraining (MLM + next-sentence heads), "
                        f"not {type(model).__name__}; use pretrain_mlm for a masked LM")
    max_length = _effective_max_length(model, cfg)
    pairs = next_sentence_pairs(_lines(texts), np.random.default_rng([cfg.seed, 1]))
    eval_batches = None
    if eval_texts is not None:
        try:
            eval_pairs = next_sentence_pairs(_lines(eval_texts),
                                             np.random.default_rng([cfg.seed, 2]))
        except DataError as e:
            raise DataError(f"the held-out text: {e}") from None
        eval_batches = _fixed_batches(NSPCollator(tokenizer, max_length, cfg.mlm_probability,
                                                  rng=cfg.seed + 1), eval_pairs, cfg)
    run = TrainingRun(model, cfg, len(pairs), {"task": "pretrain_nsp", "num_pairs": len(pairs)},
                      log, data=[list(p) for p in pairs], vocab=_vocabulary(tokenizer))
    collator = NSPCollator(tokenizer, max_length, cfg.mlm_probability, rng=run.data_rng)

    def make_batch(indices):
        return collator([pairs[i] for i in indices])

    def evaluate_fn():
        return None if eval_batches is None else evaluate_pretraining(model, eval_batches)

    return run.fit(make_batch, evaluate_fn, tokenizer)
