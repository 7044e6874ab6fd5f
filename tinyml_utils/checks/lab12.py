"""Checks for lab 12, keyword spotting on an emulated Cortex-M. Each compares the student's
function with the course package (tinyml_utils.mcu) or with NumPy on cases with known answers."""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from . import CheckFailed, expect_close, expect_equal, passed
from ..mcu import boards, kws, memory, streaming


def check_quantize(quantize, model, X_train, X_val, y_val, float_acc: float, max_drop: float = 0.015) -> None:
    """quantize(model, X_train) -> IntModel whose int8 accuracy on X_val is within `max_drop` of float."""
    from ..quant import interpreter
    from ..quant.intmodel import IntModel

    int_model = quantize(model, X_train)
    if not isinstance(int_model, IntModel):
        raise CheckFailed(f"quantize should return a tinyml_utils.quant IntModel (from convert), got {type(int_model).__name__}")
    acc = float((interpreter.predict(int_model, X_val) == y_val).mean())
    if acc < float_acc - max_drop:
        raise CheckFailed(f"int8 accuracy {acc:.3f} on the validation clips is more than {max_drop:.3f} below the "
                          f"float model's {float_acc:.3f}: calibrate on a few hundred to a few thousand training clips")
    passed(f"quantize gives an int8 model with {acc:.3f} validation accuracy (float {float_acc:.3f})")


def check_write_batch(write_batch) -> None:
    """write_batch(path, waves) writes the firmware's clips.bin, asking for the features file."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 3):
            waves = rng.integers(-32768, 32768, (n, 16000)).astype(np.int16)
            ours, theirs = Path(tmp) / "ours.bin", Path(tmp) / "theirs.bin"
            write_batch(ours, waves)
            kws.write_clip_batch(theirs, waves, write_features=True)
            got, expected = ours.read_bytes(), theirs.read_bytes()
            if got[:16] != expected[:16]:
                raise CheckFailed(f"header of {n} clip(s): expected bytes {expected[:16].hex(' ')}, got {got[:16].hex(' ')} "
                                  "(b'KWSC', then clips, samples per clip and flags as little-endian uint32)")
            expect_equal(f"file size for {n} clip(s)", len(got), len(expected))
            if got != expected:
                raise CheckFailed("the header is right but the samples differ: write them as little-endian int16 ('<i2')")
    passed("write_batch writes clips.bin exactly as the firmware reads it")


def check_parse_clip_line(parse_clip_line) -> None:
    """parse_clip_line(line) -> dict(clip, cls, fe_ticks, nn_ticks, logits, layer_ticks)."""
    rng = np.random.default_rng(1)
    for _ in range(5):
        logits = rng.integers(-128, 128, 12).tolist()
        layers = rng.integers(0, 100_000, int(rng.integers(2, 14))).tolist()
        clip, cls, fe, nn = int(rng.integers(0, 2000)), int(np.argmax(logits)), int(rng.integers(1, 10**6)), int(rng.integers(1, 10**7))
        line = (f"clip {clip} class {cls} fe {fe} nn {nn} logits {' '.join(map(str, logits))} "
                f"layers {' '.join(map(str, layers))}")
        got = parse_clip_line(line)
        expected = {"clip": clip, "cls": cls, "fe_ticks": fe, "nn_ticks": nn, "logits": logits, "layer_ticks": layers}
        if not isinstance(got, dict):
            raise CheckFailed(f"parse_clip_line should return a dict, got {type(got).__name__}")
        for key, value in expected.items():
            value_got = got.get(key)
            if isinstance(value, list):
                value_got = [int(v) for v in value_got] if value_got is not None else None
            expect_equal(f"parse_clip_line({line[:40]}...)[{key!r}]", value_got, value)
    passed("parse_clip_line reads every field of the device's result lines")


def check_ticks_to_instructions(ticks_to_instructions) -> None:
    """ticks_to_instructions(ticks, board) -> instructions (SysTick at the board's systick_hz, 1 instruction = 1 ns)."""
    for name, b in boards.BOARDS.items():
        for ticks in (1, 250, 173_199):
            expect_close(f"ticks_to_instructions({ticks}, {name})", ticks_to_instructions(ticks, b),
                         ticks * 1e9 / b.systick_hz, rel=1e-9)
    passed("ticks_to_instructions converts SysTick ticks with each board's clock (40 on MPS2, 31.25 on the AN547)")


def check_confusion(confusion_matrix) -> None:
    """confusion_matrix(y_true, y_pred, num_classes) -> (num_classes, num_classes), rows true, columns predicted."""
    rng = np.random.default_rng(2)
    for n, k in ((50, 3), (500, 12)):
        y, p = rng.integers(0, k, n), rng.integers(0, k, n)
        expected = np.zeros((k, k), dtype=int)
        np.add.at(expected, (y, p), 1)
        got = np.asarray(confusion_matrix(y, p, k))
        if got.shape != (k, k) or not np.array_equal(got, expected):
            raise CheckFailed(f"confusion_matrix for {k} classes: expected\n{expected}\ngot\n{got}\n"
                              "(row = true class, column = predicted class)")
    passed("confusion_matrix counts (true, predicted) pairs")


def check_verdict(verdict) -> None:
    """verdict(board, flash_bytes, ram_bytes) -> 'fits' or 'does not fit: ...' with the bytes short."""
    cases = [(14_000, 40_000), (17_000, 40_000), (15_000, 70_000), (300_000, 2_000_000), (16 * 1024, 64 * 1024)]
    for ram, flash in cases:
        table = memory.verdicts(flash, ram)
        for name, row in table.iterrows():
            got = verdict(boards.BOARDS[name], flash, ram)
            fits = row["verdict"] == "fits"
            if (got == "fits") != fits:
                raise CheckFailed(f"verdict({name}, flash {flash:,} B, RAM {ram:,} B): expected {row['verdict']!r}, got {got!r}")
            if not fits:
                for margin in (row["flash margin B"], row["SRAM margin B"]):
                    if margin < 0 and f"{-margin:,}" not in got and str(-margin) not in got:
                        raise CheckFailed(f"verdict({name}, flash {flash:,} B, RAM {ram:,} B) = {got!r} should say by how "
                                          f"many bytes: {-margin:,}")
    passed("verdict says fits, or by how many bytes of flash or SRAM a board is short")


def check_score(score_detections) -> None:
    """score_detections(detections, events, late) -> dict(hits, misses, false_alarms)."""
    events = [streaming.Event("yes", 2, 1.0, 1.5), streaming.Event("no", 3, 3.0, 3.4),
              streaming.Event("cat", 1, 5.0, 5.3), streaming.Event("up", 4, 7.0, 7.3)]
    hop = lambda t: int(round((t * 16000 - 160) / 320))  # noqa: E731  (the hop whose window ends at t)
    cases = [[(hop(1.8), 2, 0.9), (hop(3.2), 4, 0.8), (hop(5.5), 2, 0.7)],
             [(hop(1.6), 2, 0.9), (hop(2.4), 2, 0.9), (hop(3.5), 3, 0.9), (hop(7.2), 4, 0.8)],
             [], [(hop(0.5), 2, 0.9), (hop(4.5), 3, 0.95)]]
    for late in (1.0, 0.5):
        for detections in cases:
            expected = streaming.score(detections, events, late)
            got = score_detections(detections, events, late)
            for key in ("hits", "misses", "false_alarms"):
                expect_equal(f"score_detections({detections}, late={late})[{key!r}]", int(got[key]), expected[key])
    passed("score_detections counts hits (right keyword, in time), misses and false alarms")


def check_min_infer_every(min_infer_every) -> None:
    """min_infer_every(inference, frontend_per_hop, clock_hz, max_load) -> the smallest hops between inferences
    that keep the average per-hop instructions within max_load of a 20 ms hop's cycles."""
    cases = [(6_927_968, 44_181, 64e6, 1.0), (6_927_968, 44_181, 64e6, 0.5), (35_541_544, 44_181, 216e6, 1.0),
             (1_000_000, 10_000, 80e6, 1.0), (7e6, 44_181, 32e6, 1.0)]
    for inference, fe, clock, load in cases:
        budget = load * clock * 0.020 - fe
        expected = math.ceil(inference / budget) if budget > 0 else None
        got = min_infer_every(inference, fe, clock, load)
        expect_equal(f"min_infer_every({inference:,}, {fe:,}, {clock / 1e6:.0f} MHz, {load})", got, expected)
    passed("min_infer_every finds the fewest hops between inferences that keep up in real time")
