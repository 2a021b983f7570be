"""minibert: BERT from scratch in NumPy, with CuPy as a drop-in GPU backend.

Read it in the order data flows:
    backend.py     NumPy or CuPy, chosen in one place
    autograd.py    Tensor and reverse-mode autodiff, each op's backward beside its forward
    functional.py  the neural-network ops (linear, embedding, gelu, softmax, layer_norm, ...)
    gradcheck.py   finite-difference check of any op's backward
"""

from . import functional
from .autograd import ShapeError, Tensor, concatenate, masked_fill, no_grad, tensor, where
from .backend import (
    BackendError,
    cupy_available,
    get_backend,
    manual_seed,
    to_numpy,
    use_backend,
)
from .gradcheck import GradcheckError, gradcheck

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "GradcheckError",
    "ShapeError",
    "Tensor",
    "concatenate",
    "cupy_available",
    "functional",
    "get_backend",
    "gradcheck",
    "manual_seed",
    "masked_fill",
    "no_grad",
    "tensor",
    "to_numpy",
    "use_backend",
    "where",
]
