"""Small helpers for notebooks: computed numbers into the book's prose, tidy tables."""
from __future__ import annotations


def glue(name: str, value, display: bool = True):
    """Make a computed value available to the book's prose as {glue:text}`name`.

    In the book (myst-nb) this stores the value for the prose; anywhere it prints `name = value`
    so Colab readers see the number beside the text too.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # NumPy scalars break {glue:text} format specs under -W: use Python numbers
    try:
        from myst_nb import glue as myst_glue
        myst_glue(name, value, display=False)
    except ImportError:  # Colab without the book tools: the printed line is enough
        pass
    if display:
        print(f"{name} = {value}")
    return value
