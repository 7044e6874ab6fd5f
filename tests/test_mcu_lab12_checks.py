"""Lab 12's checks pass right answers and reject wrong ones with a message saying what was expected."""
import math
import struct

import numpy as np
import pytest

from tinyml_utils.checks import CheckFailed
from tinyml_utils.checks import lab12 as checks
from tinyml_utils.mcu import memory, streaming


def write_batch(path, waves, flags=1, dtype="<i2"):
    with open(path, "wb") as f:
        f.write(b"KWSC" + struct.pack("<III", len(waves), waves.shape[1], flags))
        f.write(np.asarray(waves).astype(dtype).tobytes())


def parse(line):
    w = line.split()
    a, b = w.index("logits"), w.index("layers")
    return {"clip": int(w[1]), "cls": int(w[3]), "fe_ticks": int(w[5]), "nn_ticks": int(w[7]),
            "logits": [int(v) for v in w[a + 1:b]], "layer_ticks": [int(v) for v in w[b + 1:]]}


def verdict(board, flash, ram):
    row = memory.verdicts(flash, ram, [board]).iloc[0]
    return row["verdict"]


def confusion(y, p, k):
    out = np.zeros((k, k), int)
    np.add.at(out, (y, p), 1)
    return out


def min_every(inference, fe, clock, load=1.0):
    spare = load * clock * 0.02 - fe
    return math.ceil(inference / spare) if spare > 0 else None


def test_right_answers_pass(capsys):
    checks.check_write_batch(write_batch)
    checks.check_parse_clip_line(parse)
    checks.check_ticks_to_instructions(lambda ticks, board: ticks * 1e9 / board.systick_hz)
    checks.check_confusion(confusion)
    checks.check_verdict(verdict)
    checks.check_score(lambda d, e, late=1.0: streaming.score(d, e, late))
    checks.check_min_infer_every(min_every)
    assert capsys.readouterr().out.count("PASSED") == 7


@pytest.mark.parametrize("check, wrong", [
    (checks.check_write_batch, lambda path, waves: write_batch(path, waves, flags=0)),
    (checks.check_write_batch, lambda path, waves: write_batch(path, waves, dtype=">i2")),
    (checks.check_parse_clip_line, lambda line: {**parse(line), "layer_ticks": parse(line)["layer_ticks"][1:]}),
    (checks.check_ticks_to_instructions, lambda ticks, board: ticks * 40),
    (checks.check_confusion, lambda y, p, k: confusion(p, y, k)),
    (checks.check_verdict, lambda board, flash, ram: "fits" if ram <= board.ram_bytes else "does not fit"),
    (checks.check_verdict, lambda board, flash, ram: "does not fit" if flash > board.flash_bytes or ram > board.ram_bytes else "fits"),
    (checks.check_score, lambda d, e, late=1.0: {**streaming.score(d, e, late), "misses": 0}),
    (checks.check_min_infer_every, lambda inference, fe, clock, load=1.0: math.ceil(inference / (load * clock * 0.02))),
])
def test_wrong_answers_fail(check, wrong):
    with pytest.raises(CheckFailed):
        check(wrong)
