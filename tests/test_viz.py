"""Plots: check what they show (axes, labels, data), not only that they run."""

import numpy as np
import pytest

import minibert
from minibert.course import viz


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


def test_confusion_matrix_plot_writes_counts_with_a_colour_bar(tmp_path):
    m = np.array([[5, 1], [0, 4]])
    fig = viz.confusion_matrix_plot(m, ["neg", "pos"])
    ax, colour_bar = fig.axes
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "4", "5"]
    assert np.array_equal(ax.images[0].get_array(), m)
    assert colour_bar.get_ylabel() == "examples" and colour_bar.get_ylim() == (0.0, 5.0)
    width, height = fig.get_size_inches()
    assert width >= 6 and height >= 5  # big enough for a slide (>= 900 px wide at 150 dpi)
    fig.savefig(tmp_path / "cm.png")  # headless save works
    assert (tmp_path / "cm.png").stat().st_size > 1000


def test_loss_curve_of_a_training_history_starts_at_step_1_and_shows_evaluation():
    history = {"steps": [{"step": i, "loss": 2.0 / i} for i in range(1, 13)],
               "epochs": [{"epoch": 1, "step": 6, "eval": {"loss": 0.9, "accuracy": 0.5}},
                          {"epoch": 2, "step": 12, "eval": {"loss": 0.4, "accuracy": 0.8}}]}
    ax = viz.loss_curve(history).axes[0]
    train, smooth, evaluation = ax.lines
    assert list(train.get_xdata()) == list(range(1, 13))  # the steps as the history counts them
    assert np.allclose(train.get_ydata(), [2.0 / i for i in range(1, 13)])
    assert list(smooth.get_xdata())[-1] == 12
    assert list(evaluation.get_xdata()) == [6, 12] and list(evaluation.get_ydata()) == [0.9, 0.4]
    assert evaluation.get_label() == "evaluation (per epoch)"
    no_eval = dict(history, epochs=[{"epoch": 1, "step": 6}])  # a run without evaluation data
    assert len(viz.loss_curve(no_eval).axes[0].lines) == 2


def test_embedding_map_texts_are_whole_apart_and_inside_the_plot():
    rng = np.random.default_rng(0)
    # eight long texts on two tight clusters: naive labels would pile up on each other
    x = np.repeat(np.eye(2, 16) * 5, 4, axis=0) + 0.05 * rng.standard_normal((8, 16))
    texts = [f"ticket {i}: my card was charged twice for the same order, please refund it"
             for i in range(8)]
    fig = viz.embedding_projection(x, labels=["billing"] * 4 + ["shipping"] * 4, texts=texts)
    ax = fig.axes[0]
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert [t.get_text().replace("\n", " ") for t in ax.texts] == texts  # whole, not cut
    for i, a in enumerate(boxes):
        assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1
        for b in boxes[i + 1:]:
            assert viz._overlap_area(a, b) == 0, (a, b)
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= frame.x1  # the legend sits beside the points, not on them
    with pytest.raises(ValueError, match="3 texts for 8 points"):
        viz.embedding_projection(x, texts=texts[:3])


def test_training_schedule_plots_the_learning_rate_and_the_clipped_norm():
    from minibert.course.viz import training_schedule

    history = {"steps": [{"step": i, "lr": lr, "grad_norm": g} for i, (lr, g) in
                         enumerate([(0.5, 3.0), (1.0, 2.0), (0.5, 0.5)], start=1)]}
    fig = training_schedule(history, max_grad_norm=1.0)
    ax_lr, ax_norm = fig.axes
    assert list(ax_lr.lines[0].get_ydata()) == [0.5, 1.0, 0.5]
    assert list(ax_norm.lines[0].get_ydata()) == [3.0, 2.0, 0.5]
    assert list(ax_norm.lines[1].get_ydata()) == [1.0, 1.0]  # the threshold
    with pytest.raises(ValueError, match="no steps"):
        training_schedule({"steps": []})


def test_encoder_block_names_every_step_with_the_configs_sizes():
    from minibert.course.viz import encoder_block

    fig = encoder_block(384, 12, 1536)
    texts = " | ".join(t.get_text() for t in fig.axes[0].texts)
    assert "12 heads of 32" in texts and "384 → 1536 → 384" in texts
    assert texts.count("LayerNorm") == 2 and texts.count("residual") >= 2
    with pytest.raises(ValueError, match="multiple"):
        encoder_block(100, 12, 400)
