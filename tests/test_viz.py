"""Plots: check what they show (axes, labels, data), not only that they run."""

import numpy as np
import pytest

import minibert
from minibert import viz


def test_attention_heatmap_shows_the_map_with_token_labels():
    a = np.array([[0.7, 0.3, 0.0], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    fig = viz.attention_heatmap(a, ["[CLS]", "hi", "[SEP]"], title="layer 1 head 2")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["[CLS]", "hi", "[SEP]"]
    assert ax.get_title() == "layer 1 head 2"
    assert np.array_equal(ax.images[0].get_array(), a)
    with pytest.raises(ValueError, match="pick one example and one head"):
        viz.attention_heatmap(np.ones((2, 3, 3)), ["a", "b", "c"])


def test_hidden_state_norms_has_one_row_per_layer():
    hs = [np.full((4, 8), float(i)) for i in range(3)]
    fig = viz.hidden_state_norms(hs, list("abcd"))
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (3, 4)
    assert np.allclose(img[2], np.sqrt(8) * 2)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["emb", "L1", "L2"]


def test_loss_curve_plots_the_losses_and_a_smoothed_trend():
    losses = list(np.linspace(2.0, 0.5, 40))
    fig = viz.loss_curve({"step": list(range(1, 41)), "loss": losses, "eval_step": [20, 40],
                          "eval_loss": [1.2, 0.6]})
    ax = fig.axes[0]
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"
    assert np.allclose(ax.lines[0].get_ydata(), losses)
    assert len(ax.lines) == 3
    with pytest.raises(ValueError, match="no losses"):
        viz.loss_curve([])


def test_probability_bars_highlight_the_argmax():
    fig = viz.probability_bars(minibert.tensor([0.1, 0.7, 0.2]), ["a", "b", "c"])
    bars = fig.axes[0].patches
    assert [round(b.get_width(), 6) for b in bars] == [0.1, 0.7, 0.2]
    assert bars[1].get_facecolor() != bars[0].get_facecolor()
    assert fig.axes[0].get_xlim() == (0.0, 1.0)


def test_pca_projection_keeps_the_main_direction():
    rng = np.random.default_rng(0)
    x = np.outer(rng.standard_normal(50), [3.0, 0, 0, 0]) + 0.01 * rng.standard_normal((50, 4))
    xy = viz.pca_2d(x)
    assert xy.shape == (50, 2) and xy[:, 0].var() > 100 * xy[:, 1].var()
    fig = viz.embedding_projection(x, labels=["p" if v > 0 else "n" for v in x[:, 0]])
    assert sorted(t.get_text() for t in fig.axes[0].get_legend().get_texts()) == ["n", "p"]


def test_confusion_matrix_plot_writes_counts(tmp_path):
    fig = viz.confusion_matrix_plot(np.array([[5, 1], [0, 4]]), ["neg", "pos"])
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0", "1", "4", "5"]
    fig.savefig(tmp_path / "cm.png")  # headless save works
    assert (tmp_path / "cm.png").stat().st_size > 1000
