"""minibert's version and distribution name: the one place each is written (pyproject.toml
reads the version from here; a test checks that it names the same distribution).

The distribution is "minibert-numpy" (``pip install minibert-numpy``): the PyPI name
"minibert" belongs to an unrelated project. The import name stays ``minibert``, as the course,
lessons, exercises and the command line say. ``__distribution__`` tells our minibert from that
other one, which has no such attribute (the notebooks' first cell checks it).
"""

__version__ = "0.2.0"
__distribution__ = "minibert-numpy"
