"""One input, traced through the whole model: what `minibert explain "TEXT"` prints.

    text -> tokens x₀…xₘ and their ids -> embeddings e₀…eₘ (T, H) -> layer 1 … L hidden states
         -> [CLS] vector -> pooled vector -> logits z -> P(class) -> argmax

`trace()` runs the model once, keeping every layer's hidden states and attention maps, and
returns the numbers that matter at each step. A base encoder (e.g. all-MiniLM-L6-v2) stops at
the pooled vector; a fine-tuned classifier (a folder written by `minibert finetune`, such as the
demo's final/) goes on to the logits, the probabilities and the decision. `format_text()` shows
the trace in the terminal; `write_html()` writes one self-contained page (numbers plus
interactive attention heatmaps; no server, no network) from templates/explain.html.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..backend import to_numpy
from ..checkpoint import load_config, resolve_model_dir
from ..console import printable
from ..model import BertModel, mean_pool
from ..pipeline import Classifier, class_probabilities
from ..tokenizer import Tokenizer

TEMPLATE = Path(__file__).resolve().parent / "templates" / "explain.html"


@dataclass
class Trace:
    """Everything `explain` shows about one input. Arrays are NumPy, for one sequence (no
    batch axis); T tokens, H hidden size, L layers, h heads."""

    text: str
    model: str  # the folder the model came from
    kind: str  # "encoder" (hidden states only) or "classifier" (a fine-tuned head on top)
    tokens: list[str]
    ids: list[int]
    embeddings: np.ndarray  # (T, H): e₀…eₘ, the embedding layer's output
    hidden_states: list[np.ndarray]  # L+1 × (T, H): the embeddings, then each layer's output
    attentions: list[np.ndarray]  # L × (h, T, T): row i = how much token i attends to each j
    cls: np.ndarray  # (H,): the last layer's vector at position 0, [CLS]
    pooled: np.ndarray | None  # (H,): tanh(h_[CLS] W_p + b_p), None without a pooler
    pooler_bias_all_zero: bool | None  # an untrained pooler (see lesson 5)
    labels: list[str] = field(default_factory=list)
    logits: np.ndarray | None = None  # (C,)
    probabilities: np.ndarray | None = None  # (C,), sums to 1
    same_as_model: bool | None = None  # our step-by-step P equals pipeline.class_probabilities

    @property
    def prediction(self) -> str | None:
        if self.probabilities is None:
            return None
        return self.labels[int(np.argmax(self.probabilities))]

    # -- summaries of the layers ---------------------------------------------------------------

    def layer_table(self) -> list[dict]:
        """Per layer: mean token norm, how much the layer changed the vectors (relative change
        and cosine to the layer below), and what its heads attend to on average."""
        rows = []
        for i, h in enumerate(self.hidden_states):
            norms = np.linalg.norm(h, axis=-1)
            row = {"layer": i, "name": "embeddings" if i == 0 else f"layer {i}",
                   "mean_norm": float(norms.mean()), "norms": norms.tolist()}
            if i > 0:
                prev = self.hidden_states[i - 1]
                change = np.linalg.norm(h - prev, axis=-1) / np.linalg.norm(prev, axis=-1)
                cos = (h * prev).sum(-1) / (norms * np.linalg.norm(prev, axis=-1))
                a = self.attentions[i - 1].mean(axis=0)  # (T, T), mean over heads
                special = [j for j, t in enumerate(self.tokens) if t in ("[CLS]", "[SEP]")]
                entropy = -(a * np.log(np.clip(a, 1e-12, None))).sum(-1)
                cls_top = np.argsort(-a[0])[:3]
                row.update(relative_change=float(change.mean()), cosine=float(cos.mean()),
                           attention_to_special=float(a[:, special].sum(-1).mean()),
                           attention_entropy=float(entropy.mean()),
                           attention_to_self=float(np.diag(a).mean()),
                           cls_attends_to=[(self.tokens[j], float(a[0, j])) for j in cls_top])
            rows.append(row)
        return rows

    def to_json(self) -> dict:
        """The numbers the HTML page needs (rounded: a page, not a checkpoint)."""
        r = lambda a, n=4: np.round(np.asarray(a, dtype=np.float64), n).tolist()
        return {
            "text": self.text, "model": self.model, "kind": self.kind,
            "tokens": self.tokens, "ids": self.ids,
            "hidden_size": int(self.embeddings.shape[-1]),
            "layers": [{k: (r(v) if k == "norms" else v) for k, v in row.items()}
                       for row in self.layer_table()],
            "attentions": [r(a, 3) for a in self.attentions],
            "cls": r(self.cls[:16]), "cls_norm": float(np.linalg.norm(self.cls)),
            "pooled": None if self.pooled is None else r(self.pooled[:16]),
            "pooled_norm": None if self.pooled is None else float(np.linalg.norm(self.pooled)),
            "pooler_untrained": self.pooler_bias_all_zero,
            "labels": self.labels,
            "logits": None if self.logits is None else r(self.logits),
            "probabilities": None if self.probabilities is None else r(self.probabilities),
            "prediction": self.prediction,
        }


def _has_label_names(model_dir: Path) -> bool:
    id2label = load_config(model_dir).id2label or {}
    names = [id2label[i] for i in sorted(id2label)]
    return bool(names) and names != [f"LABEL_{i}" for i in range(len(names))]


def trace(text: str, model: str | Path = "all-MiniLM-L6-v2", max_length: int = 128) -> Trace:
    """Run `text` through the model in `model` (a folder or a shortcut name) and keep every
    intermediate result. A folder whose config.json names its classes is a fine-tuned
    classifier; anything else is treated as a base encoder."""
    if not text.strip():
        raise ValueError("explain: the text is empty; give a sentence to follow through BERT")
    model_dir = resolve_model_dir(model)
    classifier = Classifier.from_pretrained(model_dir) if _has_label_names(model_dir) else None
    if classifier is not None:
        encoder, tokenizer, labels = classifier.model.bert, classifier.tokenizer, classifier.labels
    else:
        encoder, tokenizer, labels = BertModel.from_pretrained(model_dir), \
            Tokenizer.from_pretrained(model_dir), []
    encoder.eval()
    max_length = min(max_length, encoder.config.max_position_embeddings)
    enc = tokenizer.encode(text, max_length=max_length)
    ids = np.array([enc.input_ids])
    with no_grad():
        out = encoder(ids, None, np.array([enc.token_type_ids]), output_hidden_states=True,
                      output_attentions=True)
        hidden = [to_numpy(h.data)[0] for h in out.hidden_states]
        pooled = None if out.pooler_output is None else to_numpy(out.pooler_output.data)[0]
        result = Trace(
            text=text, model=str(model_dir),
            kind="classifier" if classifier is not None else "encoder",
            tokens=list(enc.tokens), ids=[int(i) for i in enc.input_ids],
            embeddings=hidden[0], hidden_states=hidden,
            attentions=[to_numpy(a.data)[0] for a in out.attentions],
            cls=hidden[-1][0], pooled=pooled,
            pooler_bias_all_zero=None if encoder.pooler is None
            else bool((to_numpy(encoder.pooler.b.data) == 0).all()),
            labels=list(labels))
        if classifier is not None:
            # the head by hand: logits z = summary W_c + b_c (eval mode: no dropout), softmax.
            # The summary is the pooled [CLS], or the mean token vector (config.pooling).
            summary = out.pooler_output
            if classifier.model.config.pooling == "mean":
                summary = mean_pool(out.last_hidden_state, np.ones(ids.shape, dtype=np.int64))
            z = to_numpy(classifier.model.classifier(summary).data)[0]
            p = np.exp(z - z.max())
            p /= p.sum()
            result.logits, result.probabilities = z, p
            model_p = class_probabilities(classifier.model, ids, None,
                                          np.array([enc.token_type_ids]))
            result.same_as_model = bool(np.allclose(p, model_p[0], atol=1e-5))
    return result


# -- the terminal ------------------------------------------------------------------------------


def _vec(v: np.ndarray, n: int = 6) -> str:
    return "[" + "  ".join(f"{x:+.3f}" for x in v[:n]) + ("  …]" if len(v) > n else "]")


def format_text(t: Trace) -> str:
    T, H = t.embeddings.shape
    L, heads = len(t.attentions), t.attentions[0].shape[0] if t.attentions else 0
    kind = ("a fine-tuned classifier" if t.kind == "classifier"
            else "a base encoder: hidden states only")
    out = [f"text:  {t.text!r}",
           f"model: {t.model} ({kind})",
           "",
           f"1. Tokens x₀…x_{T - 1} and their ids ({T} tokens)"]
    out += [f"   x_{i:<3} {tok:<16} id {i_:>6}" for i, (tok, i_) in
            enumerate(zip(t.tokens, t.ids, strict=True))]
    norms = np.linalg.norm(t.embeddings, axis=-1)
    out += ["", f"2. Embeddings e₀…e_{T - 1}: shape ({T}, {H}) = word + position + segment, "
                "then LayerNorm",
            f"   ‖eᵢ‖ per token: min {norms.min():.2f}, mean {norms.mean():.2f}, "
            f"max {norms.max():.2f}"]
    out += ["", f"3. {L} encoder layers, each ({T}, {H}) -> ({T}, {H}); {heads} attention heads",
            f"   {'':<11} {'mean ‖h‖':>9} {'change':>7} {'cos':>6} {'→[CLS]/[SEP]':>13} "
            f"{'→self':>6}   [CLS] attends most to"]
    for row in t.layer_table():
        if row["layer"] == 0:
            out.append(f"   {row['name']:<11} {row['mean_norm']:>9.2f}")
            continue
        top = ", ".join(f"{tok} {w:.2f}" for tok, w in row["cls_attends_to"])
        out.append(f"   {row['name']:<11} {row['mean_norm']:>9.2f} "
                   f"{row['relative_change']:>7.1%} {row['cosine']:>6.3f} "
                   f"{row['attention_to_special']:>13.1%} {row['attention_to_self']:>6.1%}   "
                   f"{top}")
    out.append("   change = mean ‖h_l − h_(l−1)‖ / ‖h_(l−1)‖ per token; cos = mean cosine to the "
               "layer below;")
    out.append("   →[CLS]/[SEP], →self: share of attention (mean over heads and tokens).")
    out += ["", f"4. The [CLS] vector h_[CLS] (H = {H}): ‖h‖ = {np.linalg.norm(t.cls):.2f}",
            f"   {_vec(t.cls)}"]
    if t.pooled is not None:
        out += ["", f"5. Pooled vector tanh(h_[CLS] W_p + b_p): ‖·‖ = "
                    f"{np.linalg.norm(t.pooled):.2f}", f"   {_vec(t.pooled)}"]
        if t.pooler_bias_all_zero:
            out.append("   note: the pooler's bias is exactly 0 everywhere: this pooler was "
                       "never trained (lesson 5)")
    if t.kind == "classifier":
        C = len(t.labels)
        out += ["", f"6. Logits z = pooled W_c + b_c: shape ({C},)", f"   {_vec(t.logits, C)}",
                "", "7. P(class | text) = softmax(z)"]
        best = int(np.argmax(t.probabilities))
        for i, (name, p) in enumerate(zip(t.labels, t.probabilities, strict=True)):
            bar = "█" * int(round(40 * float(p)))
            out.append(f"   {name:<24} {p:6.3f} {bar}{'   <- argmax' if i == best else ''}")
        out += ["", f"8. Decision (argmax): {t.prediction}",
                f"   (same probabilities as pipeline.class_probabilities: {t.same_as_model})"]
    else:
        out += ["", "This is a base encoder: no prediction network, so no logits or classes. "
                    "Give a fine-tuned model folder (--model runs/…/final) to see them."]
    # tokens and class names come from the model folder, the text from the user: none of
    # them may control the terminal (an escape sequence is shown, not obeyed)
    return printable("\n".join(out), keep_newlines=True)


# -- the page ----------------------------------------------------------------------------------


def to_html(t: Trace) -> str:
    """One self-contained HTML page: the data inlined as JSON, the template's own script and
    styles, nothing loaded from anywhere."""
    template = TEMPLATE.read_text(encoding="utf-8")
    if "/*EXPLAIN_DATA*/null" not in template:
        raise RuntimeError(f"{TEMPLATE} lost its /*EXPLAIN_DATA*/null placeholder")
    return template.replace("/*EXPLAIN_DATA*/null", script_json(t.to_json()))


# <, > and & are what can end a script or open a comment in it ("</script>", "<!--" makes
# the parser look for "-->" and swallow the rest of the page); U+2028/2029 end a line.
# As \uXXXX escapes inside JSON strings they are the same characters to JavaScript.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                              "\u2028": "\\u2028", "\u2029": "\\u2029"})


def script_json(value: Any) -> str:
    """`value` as JSON that can sit inside <script>...</script> whatever its strings hold:
    no text from the user or the model folder can end the script or change how it parses."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_SCRIPT_SAFE)


GENERATOR = '<meta name="generator" content="minibert explain">'  # marks pages we wrote


def check_html_target(path: str | Path) -> Path:
    """Check, writing nothing, that the page may be written to `path`: a name ending in .html
    in a folder that exists, and either nothing there yet or a page this code wrote earlier.
    A folder, a named pipe, a device or a symbolic link is refused without being opened (a
    pipe would block the command; a link would be written through)."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm") and not path.is_dir():
        raise ValueError(f"--html {path}: the file name must end in .html")
    try:
        info = path.lstat()
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        raise ValueError(f"--html {path} is a symbolic link; give the page's own file name "
                         "(nothing was written)")
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise ValueError(f"--html {path} is a folder; give a file name such as explain.html")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise ValueError(f"--html {path} is not a regular file (a named pipe or a device?); "
                         "give the name of a file to write, such as explain.html")
    if not path.resolve().parent.is_dir():
        raise FileNotFoundError(f"--html {path}: the folder {path.parent} does not exist")
    if info is not None and GENERATOR not in path.read_text(encoding="utf-8", errors="replace"):
        raise ValueError(f"--html {path} exists and was not written by minibert explain; "
                         "choose another file name (nothing was written)")
    return path


def write_html(t: Trace, path: str | Path) -> Path:
    """Write the page to `path` atomically (see ``check_html_target`` for what is refused).
    An existing file is replaced only if it is a page this function wrote earlier."""
    from ..fileio import atomic_write

    path = check_html_target(path)
    html = to_html(t)
    atomic_write(path, lambda f: f.write(html), mode="w")
    return path
