"""minibert: BERT from scratch in NumPy, with CuPy as a drop-in GPU backend.

Read it in the order data flows:
    tokenizer.py     text -> token ids (words and punctuation, then WordPiece subwords)
    backend.py       NumPy or CuPy, chosen in one place
    process_settings.py  what `import minibert` changes for the whole process, and how to
                     turn it off
    parallel.py      threads: large elementwise work in cache-sized blocks on all CPU cores
    autograd.py      Tensor and reverse-mode autodiff, each op's backward beside its forward
    functional.py    the neural-network ops (linear, embedding, gelu, softmax, layer_norm, ...)
    nn.py            Module and layers
    config.py        BertConfig: the fields of config.json
    checkpoint.py    real weights: Hugging Face names, config.json + model.safetensors
    model.py         BERT: embeddings -> encoder layers -> hidden states -> heads
    data.py, optim.py, train.py   pre-training and fine-tuning (run_state.py: a run's saved
                                  state; evaluation.py, metrics.py: how good a model is)
    token_data.py    one label per word: tagged sentences, labels aligned with word pieces
    pipeline.py      inference: text -> probabilities -> argmax (Tagger: a tag per word)
"""

# First, before anything imports NumPy: importing process_settings sets OpenBLAS's thread
# timeout (it is read when NumPy is first imported). What `import minibert` changes for the
# whole process, and how to turn it off: process_settings.py.
from . import process_settings  # noqa: I001 (must stay first)
from . import backend, functional
from .autograd import ShapeError, Tensor, concatenate, masked_fill, no_grad, tensor, where
from .backend import (
    BackendError,
    cupy_available,
    get_backend,
    manual_seed,
    to_numpy,
    use_backend,
)
from .checkpoint import CheckpointError
from .config import BertConfig
from .console import get_verbosity, set_verbosity
from .data import DataError, LabelledData, MLMCollator, read_labelled, read_text_corpus
from .evaluation import evaluate, evaluate_tokens
from .gradcheck import GradcheckError, gradcheck
from .model import (
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)
from .optim import SGD, AdamW, clip_grad_norm, linear_warmup_decay
from .parallel import get_num_threads, set_num_threads
from .pipeline import Classifier, Tagger  # also minibert.pipeline("text-classification", ...)
from .safetensors_io import load_file, save_file
from .sentence import SentenceEncoder
from .token_data import TokenLabelledData, read_token_labelled
from .tokenizer import BasicTokenizer, Tokenizer
from .train import (
    TrainConfig,
    TrainingDivergedError,
    finetune,
    finetune_tokens,
    pretrain_mlm,
    pretrain_nsp,
)
from .version import __distribution__ as __distribution__  # re-exported: our PyPI name
from .version import __version__ as __version__  # re-exported: minibert.__version__

# The settings read from the environment, applied once, here:
#   MINIBERT_BACKEND=cupy          the active backend (backend.py)
#   MINIBERT_KEEP_FREED_MEMORY=0   glibc's malloc gives each large freed array back to the
#       system, and the next one then costs a page fault per 4 KB page: by default it keeps
#       them for reuse (~10 % of a training step; see process_settings.py)
# A bad value stops the import with an error that says what is wrong. In the `minibert` command,
# that error is one line and exit status 2, as for any other mistake, not a traceback.
try:
    backend.use_backend_from_environment()
    process_settings.keep_freed_memory()
except (ValueError, BackendError) as e:
    from .cli import exit_if_command

    exit_if_command(e)
    raise

__all__ = [
    "AdamW", "BackendError", "BasicTokenizer", "BertConfig", "BertForMaskedLM",
    "BertForPreTraining", "BertForSequenceClassification", "BertForTokenClassification",
    "BertModel", "CheckpointError", "Classifier", "DataError", "GradcheckError", "LabelledData",
    "MLMCollator", "SGD", "SentenceEncoder", "ShapeError", "Tagger", "Tensor", "TokenLabelledData",
    "Tokenizer", "TrainConfig", "TrainingDivergedError", "clip_grad_norm", "concatenate",
    "cupy_available", "evaluate", "evaluate_tokens", "finetune", "finetune_tokens", "functional",
    "get_backend", "get_num_threads", "get_verbosity", "gradcheck", "linear_warmup_decay",
    "load_file", "manual_seed", "masked_fill", "no_grad", "pipeline", "pretrain_mlm",
    "pretrain_nsp", "read_labelled", "read_text_corpus", "read_token_labelled", "save_file",
    "set_num_threads", "set_verbosity", "tensor", "to_numpy", "use_backend", "where",
]
