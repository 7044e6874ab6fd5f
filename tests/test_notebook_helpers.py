import numpy as np

from tinyml_utils.notebook import glue


def test_glue_returns_plain_python_numbers(capsys):
    value = glue("x", np.float32(0.5))
    assert type(value) is float and value == 0.5
    assert type(glue("n", np.int64(3), display=False)) is int
    assert "x = 0.5" in capsys.readouterr().out
