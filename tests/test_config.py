"""config.json from a file anyone may have written (issue 12): a field of the wrong type or value
is a CheckpointError naming the file and the field, never a traceback from deep inside the model
or a silently different model; a property test feeds generated malformed configs."""

import json
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert.checkpoint import CheckpointError, load_config
from minibert.config import BertConfig

TINY = dict(vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=12, max_position_embeddings=16)


def write_config(folder, d):
    (folder / "config.json").write_text(json.dumps(d) if isinstance(d, dict) else d)
    return folder


@pytest.mark.parametrize("field, value, match", [
    ("hidden_size", 32.0, "hidden_size must be a positive integer, not 32.0"),
    ("hidden_size", "abc", "hidden_size must be a positive integer, not 'abc'"),
    ("num_attention_heads", 0, "num_attention_heads must be a positive integer, not 0"),
    ("num_hidden_layers", -1, "num_hidden_layers must be a positive integer, not -1"),
    ("pad_token_id", 99999, r"pad_token_id must be null or an id in 0\.\.19"),
    ("id2label", ["neg", "pos"], "id2label must be an object"),
    ("id2label", {"zero": "neg"}, "id2label must map ids"),
    ("id2label", {"0": ["neg"]}, "id2label must map ids"),
    ("label2id", {"neg": "x"}, "label2id must map names"),
    ("layer_norm_eps", "abc", "layer_norm_eps must be a number > 0, not 'abc'"),
    ("layer_norm_eps", 0, "layer_norm_eps must be a number > 0"),
    ("vocab_size", True, "vocab_size must be a positive integer, not True"),
    ("max_position_embeddings", "128", "max_position_embeddings must be a positive integer"),
    ("hidden_dropout_prob", 1.5, r"hidden_dropout_prob must be a number in \[0, 1\)"),
    ("classifier_dropout", "0.1", "classifier_dropout must be null or a number"),
    ("num_labels", 0, "num_labels must be a positive integer"),
    ("hidden_act", ["gelu"], "hidden_act must be a string"),
    ("vocab_size", 10**12, "parameters"),
])
def test_wrong_field_types_and_values_name_the_file_and_field(tmp_path, field, value, match):
    write_config(tmp_path, {**TINY, field: value})
    with pytest.raises(CheckpointError, match=match) as e:
        load_config(tmp_path)
    assert str(tmp_path / "config.json") in str(e.value)


@pytest.mark.parametrize("text, match", [
    ("[" * 200_000, "nested too deeply"),
    ('{"vocab_size": ' + "9" * 5000 + "}", "not valid JSON"),
    ("[1, 2]", "expected a JSON object, not list"),
    ("\xff", "not valid"),
])
def test_malformed_json_is_a_checkpoint_error(tmp_path, text, match):
    write_config(tmp_path, text)
    with pytest.raises(CheckpointError, match=match):
        load_config(tmp_path)


def test_valid_configs_still_load(tmp_path):
    write_config(tmp_path, {**TINY, "id2label": {"0": "neg", "1": "pos"},
                            "classifier_dropout": None, "pad_token_id": None,
                            "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0})
    config = load_config(tmp_path)
    assert config.label2id == {"neg": 0, "pos": 1} and config.pad_token_id is None
    assert BertConfig(**TINY, num_labels=3).num_labels == 3


# Property test: any JSON at all in config.json gives a BertConfig or a CheckpointError (never
# another exception), with little memory: the loader never builds a model.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=5),
    lambda v: st.lists(v, max_size=3) | st.dictionaries(st.text(max_size=4), v, max_size=3),
    max_leaves=8,
)
plausible = {
    **{name: st.integers(-2, 40) | json_values for name in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "intermediate_size", "max_position_embeddings", "type_vocab_size", "pad_token_id",
        "num_labels")},
    **{name: st.floats(-1, 2) | json_values for name in (
        "hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout",
        "initializer_range", "layer_norm_eps")},
    "id2label": st.dictionaries(st.sampled_from(["0", "1", "2", "x", "-1"]),
                                st.text(max_size=3) | json_values, max_size=3) | json_values,
    "label2id": st.dictionaries(st.text(max_size=3), st.integers(-1, 3) | json_values,
                                max_size=3) | json_values,
    "hidden_act": st.sampled_from(["gelu", "relu"]) | json_values,
    "model_type": st.sampled_from(["bert", "gpt2"]) | json_values,
    "position_embedding_type": st.sampled_from(["absolute", "relative_key"]) | json_values,
}
configs = st.fixed_dictionaries({}, optional=plausible).map(lambda d: {**TINY, **d}) | \
    st.fixed_dictionaries({}, optional=plausible) | json_values


@settings(max_examples=300, deadline=None)
@given(config=configs)
def test_property_any_config_json_gives_a_config_or_a_checkpoint_error(config):
    with tempfile.TemporaryDirectory() as d:
        write_config(Path(d), json.dumps(config))
        tracemalloc.start()
        try:
            loaded = load_config(d)
            assert isinstance(loaded, BertConfig) and loaded.num_labels >= 1
        except CheckpointError as e:
            assert "config.json" in str(e)
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert peak < 2_000_000
