"""Pictures that explain: attention maps, hidden-state norms, loss curves, probabilities.

Every helper takes plain arrays (NumPy, CuPy or minibert Tensors — all are brought to the host),
draws on a new matplotlib Figure and returns it, so lessons can save it and tests can inspect its
axes, labels and data. Nothing here needs a screen: figures are made without pyplot's GUI, so it
works headless (the Agg canvas).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

from .. import backend


def _host(a: npt.ArrayLike) -> np.ndarray:
    return backend.to_numpy(a.data if hasattr(a, "data") and hasattr(a, "grad") else a)


def _figure(width: float = 6.0, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # attach a headless canvas so fig.savefig works anywhere
    return fig


def attention_heatmap(attention: npt.ArrayLike, tokens: Sequence[str],
                      title: str = "Attention") -> Figure:
    """One head's attention map: row i shows how much token i attends to each token j.

    attention: (seq, seq), rows sum to 1. tokens: the seq token strings.
    """
    a = _host(attention)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] != len(tokens):
        raise ValueError(f"attention_heatmap: need a (seq, seq) map for {len(tokens)} tokens, "
                         f"got shape {a.shape}; pick one example and one head first")
    fig = _figure(1.0 + 0.45 * len(tokens), 0.8 + 0.4 * len(tokens))
    ax = fig.add_subplot()
    im = ax.imshow(a, cmap="viridis", vmin=0.0, vmax=max(float(a.max()), 1e-9))
    ax.set_xticks(range(len(tokens)), tokens, rotation=90)
    ax.set_yticks(range(len(tokens)), tokens)
    ax.set_xlabel("attends to (key)")
    ax.set_ylabel("token (query)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="attention weight")
    return fig


def hidden_state_norms(hidden_states: Sequence, tokens: Sequence[str],
                       title: str = "Hidden-state norm per layer") -> Figure:
    """‖h‖ of every token after every layer: how the representation grows and changes.

    hidden_states: L+1 arrays of shape (seq, hidden) — the embeddings, then each layer's output.
    """
    norms = np.stack([np.linalg.norm(_host(h), axis=-1) for h in hidden_states])  # (L+1, seq)
    if norms.shape[1] != len(tokens):
        raise ValueError(f"hidden_state_norms: states have {norms.shape[1]} positions but "
                         f"{len(tokens)} tokens were given")
    fig = _figure(1.0 + 0.45 * len(tokens), 3.5)
    ax = fig.add_subplot()
    im = ax.imshow(norms, cmap="magma", aspect="auto")
    ax.set_xticks(range(len(tokens)), tokens, rotation=90)
    ax.set_yticks(range(len(norms)), ["emb"] + [f"L{i}" for i in range(1, len(norms))])
    ax.set_xlabel("token")
    ax.set_ylabel("layer")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="L2 norm")
    return fig


def loss_curve(history: dict | Sequence[float], title: str = "Training loss") -> Figure:
    """Loss against optimizer step, with the evaluation loss after each epoch.

    `history`: what ``finetune``/``pretrain_mlm`` return (its "steps" and "epochs"; steps count
    from 1), a dict of lists {"step", "loss"} (optionally "eval_step"/"eval_loss"), or a plain
    list of losses (steps 1, 2, ...).
    """
    if isinstance(history, dict) and "steps" in history:  # a training run's history
        evaluated = [e for e in history.get("epochs", []) if "loss" in e.get("eval", {})]
        history = {"step": [s["step"] for s in history["steps"]],
                   "loss": [s["loss"] for s in history["steps"]],
                   "eval_step": [e["step"] for e in evaluated],
                   "eval_loss": [e["eval"]["loss"] for e in evaluated]}
    if isinstance(history, dict):
        loss = np.asarray(history["loss"], dtype=float)
        steps = np.asarray(history.get("step", range(1, len(loss) + 1)))
    else:
        loss = np.asarray(history, dtype=float)
        steps = np.arange(1, len(loss) + 1)
    if loss.size == 0:
        raise ValueError("loss_curve: the history holds no losses yet")
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(steps, loss, label="train (per step)", alpha=0.5)
    if loss.size >= 10:  # a moving average shows the trend through batch-to-batch noise
        k = max(2, loss.size // 20)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, label=f"train (mean of {k})")
    if isinstance(history, dict) and history.get("eval_loss"):
        ax.plot(history["eval_step"], history["eval_loss"], "o-", label="evaluation (per epoch)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    return fig


def training_schedule(history: dict, max_grad_norm: float | None = None,
                      title: str = "The optimizer's schedule") -> Figure:
    """Two panels against the optimizer step: the learning rate (warm-up, then linear decay)
    and the gradient norm before clipping, with the clipping threshold as a line.

    `history`: what ``finetune``/``pretrain_mlm`` return (its "steps", each with "lr" and
    "grad_norm"; steps count from 1).
    """
    steps = history.get("steps", []) if isinstance(history, dict) else []
    if not steps:
        raise ValueError("training_schedule: the history holds no steps yet")
    step = np.array([s["step"] for s in steps])
    fig = _figure(6.0, 5.0)
    ax_lr, ax_norm = fig.subplots(2, 1, sharex=True)
    ax_lr.plot(step, [s["lr"] for s in steps], "o-")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title(title)
    ax_norm.plot(step, [s["grad_norm"] for s in steps], "o-", label="gradient norm ‖g‖")
    if max_grad_norm is not None:
        ax_norm.axhline(max_grad_norm, color="C3", linestyle="--",
                        label=f"clipped to {max_grad_norm:g} above this")
    ax_norm.set_xlabel("step")
    ax_norm.set_ylabel("‖g‖ before clipping")
    ax_norm.legend()
    return fig


def encoder_block(hidden_size: int, num_heads: int, intermediate_size: int,
                  title: str = "One encoder layer (BERT, post-LN)") -> Figure:
    """A diagram of one encoder layer, bottom to top, with the shapes of one sequence of T
    tokens: multi-head attention, add & norm, the GELU feed-forward network, add & norm. The
    residual paths go around each sub-layer."""
    H, h, F_ = hidden_size, num_heads, intermediate_size
    if H % h:
        raise ValueError(f"encoder_block: hidden size {H} is not a multiple of {h} heads")
    steps = [  # (text, y) from the input at the bottom to the output at the top
        (f"x   (T × {H})", 0.0),
        (f"multi-head self-attention\n{h} heads of {H // h}: concat, then W_O ({H} × {H})", 1.2),
        ("+  (residual: x + attention)", 2.4),
        (f"LayerNorm   (T × {H})", 3.3),
        (f"feed-forward: GELU(a W₁ + b₁) W₂ + b₂\n{H} → {F_} → {H}, each token alone", 4.5),
        ("+  (residual)", 5.7),
        (f"LayerNorm → h   (T × {H})", 6.6),
    ]
    fig = _figure(5.5, 7.0)
    ax = fig.add_subplot()
    for text, y in steps:
        big = "\n" in text
        ax.text(0.5, y, text, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "#dde8f5" if big else "#f2f2f2",
                      "edgecolor": "#4a6fa5"})
    for (_, y0), (_, y1) in zip(steps, steps[1:], strict=False):
        ax.annotate("", xy=(0.5, y1 - 0.35), xytext=(0.5, y0 + 0.35),
                    arrowprops={"arrowstyle": "->"})
    red = "#b05030"
    for start, end in ((0.0, 2.4), (3.3, 5.7)):  # the residual paths go around the sub-layers
        ax.plot([0.66, 1.0, 1.0], [start, start, end], color=red)
        ax.annotate("", xy=(0.74, end), xytext=(1.0, end),
                    arrowprops={"arrowstyle": "->", "color": red})
        ax.text(1.03, (start + end) / 2, "residual", color=red, fontsize=8, va="center",
                rotation=90)
    ax.set_xlim(-0.1, 1.25)
    ax.set_ylim(-0.6, 7.2)
    ax.axis("off")
    ax.set_title(title)
    return fig


def probability_bars(probs: npt.ArrayLike, labels: Sequence[str],
                     title: str = "P(class | text)") -> Figure:
    """The class probability distribution of one prediction; the argmax bar is highlighted."""
    p = _host(probs).astype(float).reshape(-1)
    if p.size != len(labels):
        raise ValueError(f"probability_bars: {p.size} probabilities for {len(labels)} labels")
    fig = _figure(5.0, 0.6 + 0.45 * len(labels))
    ax = fig.add_subplot()
    colors = ["tab:orange" if i == int(p.argmax()) else "tab:blue" for i in range(p.size)]
    ax.barh(range(p.size), p, color=colors)
    ax.set_yticks(range(p.size), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.set_title(title)
    for i, v in enumerate(p):
        ax.text(min(v + 0.02, 0.9), i, f"{v:.2f}", va="center")
    return fig


def pca_2d(x: npt.ArrayLike) -> np.ndarray:
    """Project rows of x (n, d) onto their two main directions (PCA via SVD): (n, 2)."""
    rows = _host(x).astype(np.float64)
    rows = rows - rows.mean(axis=0)
    _, _, vt = np.linalg.svd(rows, full_matrices=False)
    return rows @ vt[:2].T


def embedding_projection(embeddings: npt.ArrayLike, labels: Sequence[str] | None = None,
                         texts: Sequence[str] | None = None,
                         title: str = "Sentence embeddings (PCA)") -> Figure:
    """Sentence embeddings (n, d) in 2-D; points coloured by label, optionally annotated.

    texts: written beside their points, whole (wrapped onto short lines), each placed where it
    overlaps no other text and stays inside the plot (``_place_labels``).
    """
    xy = pca_2d(embeddings)
    fig = _figure(8.0, 6.5)
    ax = fig.add_subplot()
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1])
    else:
        for name in sorted(set(labels)):
            idx = [i for i, lab in enumerate(labels) if lab == name]
            ax.scatter(xy[idx, 0], xy[idx, 1], label=name)
        # beside the plot, not over the points and their texts
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    ax.set_title(title)
    if texts:
        if len(texts) != len(xy):
            raise ValueError(f"embedding_projection: {len(texts)} texts for {len(xy)} points")
        ax.margins(0.3)  # room around the points for their texts
        _place_labels(fig, ax, xy, texts)
    return fig


def _place_labels(fig: Figure, ax: Axes, xy: np.ndarray, texts: Sequence[str],
                  width: int = 24) -> None:
    """Write each text beside its point where it overlaps no text placed before it.

    Greedy: for each point try positions around it, nearest first, and keep the first whose
    box (measured by the renderer, in pixels) lies inside the axes and clear of the others;
    when none is free, the one that overlaps least.
    """
    import textwrap

    fig.draw_without_rendering()  # settle the layout, so pixel positions are final
    renderer = cast(FigureCanvasAgg, fig.canvas).get_renderer()  # viz draws with Agg
    frame = ax.get_window_extent(renderer)
    offsets = [(dx * r, dy * r) for r in (1, 3, 5) for dx, dy in
               ((6, 4), (6, -4), (-6, 4), (-6, -4), (0, 8), (0, -8))]
    placed: list[Bbox] = []
    for (x, y), text in zip(xy, texts, strict=True):
        best: tuple[float, Annotation, Bbox] | None = None
        for dx, dy in offsets:
            ann = ax.annotate(textwrap.fill(text, width), (x, y), xytext=(dx, dy),
                              textcoords="offset points", fontsize=7,
                              ha="left" if dx >= 0 else "right",
                              va="bottom" if dy >= 0 else "top")
            ann.set_in_layout(False)  # keep the layout settled above
            box = ann.get_window_extent(renderer)
            overlap = sum(_overlap_area(box, other) for other in placed)
            outside = box.width * box.height - _overlap_area(box, frame)
            cost = overlap + outside
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost == 0:
                break
        assert best is not None  # offsets is not empty: one position was tried
        placed.append(best[2])


def _overlap_area(a: Bbox, b: Bbox) -> float:
    """The area two pixel boxes (matplotlib Bbox) share."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def confusion_matrix_plot(matrix: npt.ArrayLike, labels: Sequence[str],
                          title: str = "Confusion matrix") -> Figure:
    """Counts of (true class, predicted class); the diagonal holds the correct predictions.

    Sized for a slide (about 8 x 6.5 inches for 4 classes), with a colour bar for the counts.
    """
    m = _host(matrix)
    if m.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion_matrix_plot: matrix {m.shape} for {len(labels)} labels")
    n = len(labels)
    fig = _figure(max(6.0, 3.5 + 1.1 * n), max(5.0, 2.5 + 1.0 * n))
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="Blues", vmin=0)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="examples")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=12,
                    color="white" if m[i, j] > m.max() / 2 else "black")
    return fig
