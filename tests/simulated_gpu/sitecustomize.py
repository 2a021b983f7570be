"""Read at start-up by every Python process that `pytest --cupy` starts on a machine without
a GPU (the lesson scripts, the notebook kernels, the exercise checks): it puts the simulated
CuPy where `import cupy` looks, so that MINIBERT_BACKEND=cupy, which those processes inherit,
runs them on it too. Nothing else imports this file.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cupy_sim  # noqa: E402

cupy_sim.install()
