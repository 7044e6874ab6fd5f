"""The keyword-spotting firmware: build it around a model's C code, feed it clips, read results.

Two applications share the start-up code, the front end (`firmware/frontend/mfcc.c`) and the
model's generated C (`model.h` API: `model_input()`, `model_run()`, `model_output()`, and the
quantization of the input and the output, which the front end and the detector use):

* `kws_clips.c` classifies a batch of 1-second clips read from the host file `clips.bin` and
  prints one line per clip (class, logits, instructions of the front end, of the model and of
  every layer);
* `kws_stream.c` listens to a long recording hop by hop and prints detections (`streaming.py`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .boards import Board, get_board
from .build import FIRMWARE, Firmware, build
from .frontend import frontend_sources
from .run import DeviceRun, run
from .streaming import FIRST_KEYWORD

APPS = {"clips": FIRMWARE / "kws_clips.c", "stream": FIRMWARE / "kws_stream.c"}
APP_SOURCES = [FIRMWARE / "report.c", FIRMWARE / "layer_marks.c"]
CLIP_SAMPLES = 16_000


@dataclass
class ModelCode:
    """A model as C: its sources (model.c and any runtime) and include directories (with model.h,
    which says everything the firmware needs about the model, its quantization included)."""
    sources: list
    include_dirs: list
    meta: dict = field(default_factory=dict)


def engine_code(model, out_dir: str | Path, kernels: str = "opt") -> ModelCode:
    """Generate the C of an `IntModel` with the course's engine (`tinyml_utils.engine.codegen`)
    into `out_dir`: model.c, model.h, and the engine's runtime kernels ("opt" or "ref")."""
    from ..engine import codegen

    generated = codegen.generate(model, kernels=kernels)
    header, source = generated.write(out_dir)
    return ModelCode([source, *codegen.runtime_sources()], [Path(out_dir), codegen.RUNTIME],
                     {"generated": generated, "kernels": kernels})


def build_kws(code: ModelCode, board: str | Board, out_dir: str | Path, app: str = "clips",
              dump_layers: bool = False, stack_reserve: int = 2048, defines: dict | None = None) -> Firmware:
    """Build the KWS application `app` ("clips" or "stream") with the model `code` for `board`.

    `dump_layers` makes the debug build, which writes every layer's output to layers.bin. The
    streaming detector gets the first keyword class (`streaming.FIRST_KEYWORD`) as a define: the
    class list is the data set's, the only thing the firmware needs that model.h cannot say.
    """
    board = get_board(board)
    out = Path(out_dir)
    gen = out / "generated"
    fe_sources, fe_includes = frontend_sources(gen)
    app_defines = {"KWS_FIRST_KEYWORD": FIRST_KEYWORD} if app == "stream" else {}
    all_defines = {"MODEL_LAYER_HOOK": None, **({"KWS_DUMP_LAYERS": None} if dump_layers else {}), **app_defines,
                   **(defines or {})}
    name = f"kws_{app}{'_debug' if dump_layers else ''}_{board.name}"
    return build([APPS[app], *APP_SOURCES, *fe_sources, *code.sources], board, out,
                 include_dirs=[*fe_includes, gen, *code.include_dirs], defines=all_defines,
                 stack_reserve=stack_reserve, name=name)


def write_clip_batch(path: str | Path, waves: np.ndarray, write_features: bool = False) -> Path:
    """Write clips (N, 16000) int16 as the firmware's batch file clips.bin."""
    waves = np.asarray(waves)
    if waves.ndim != 2 or waves.shape[1] != CLIP_SAMPLES or waves.dtype != np.int16:
        raise ValueError(f"expected int16 clips shaped (N, {CLIP_SAMPLES}), got {waves.dtype} {waves.shape}")
    with open(path, "wb") as f:
        f.write(b"KWSC" + struct.pack("<III", len(waves), CLIP_SAMPLES, int(write_features)))
        f.write(waves.astype("<i2").tobytes())
    return Path(path)


@dataclass
class ClipResults:
    """What the device reported for a batch of clips. Ticks are SysTick ticks; the properties
    convert them to instructions."""
    predictions: np.ndarray      # (N,) class index
    logits: np.ndarray           # (N, classes) int8
    frontend_ticks: np.ndarray   # (N,)
    model_ticks: np.ndarray      # (N,)
    layer_ticks: np.ndarray      # (N, layers)
    layer_names: list
    features: np.ndarray | None  # (N, 49, 10) int8, if requested
    run: DeviceRun

    @property
    def stack_peak_bytes(self) -> int:
        return self.run.stack_peak_bytes

    @property
    def model_instructions(self) -> np.ndarray:
        """Instructions of one inference, per clip (N,)."""
        return self.run.instructions(self.model_ticks)

    @property
    def frontend_instructions(self) -> np.ndarray:
        """Instructions of the front end for one 1-second clip (49 frames), per clip (N,)."""
        return self.run.instructions(self.frontend_ticks)

    @property
    def layer_instructions(self) -> np.ndarray:
        """Instructions per layer, per clip (N, layers)."""
        return self.run.instructions(self.layer_ticks)


def run_clips(firmware: Firmware, waves: np.ndarray, workdir: str | Path, write_features: bool = False,
              timeout: float | None = None) -> ClipResults:
    """Classify clips (N, 16000) int16 on the device; one QEMU run for the whole batch."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_clip_batch(workdir / "clips.bin", waves, write_features)
    done = run(firmware, workdir, timeout=timeout if timeout is not None else 30 + 0.5 * len(waves))
    names = done.lines("layers")[0]
    rows = done.lines("clip")
    if len(rows) != len(waves):
        raise RuntimeError(f"the device reported {len(rows)} clips of {len(waves)}")
    parsed = []
    for words in rows:
        i_logits, i_layers = words.index("logits"), words.index("layers")
        parsed.append((int(words[2]), int(words[4]), int(words[6]),
                       [int(v) for v in words[i_logits + 1:i_layers]], [int(v) for v in words[i_layers + 1:]]))
    features = None
    if write_features:
        raw = np.fromfile(workdir / "features.bin", dtype=np.int8)
        features = raw.reshape(len(waves), 49, 10)
    return ClipResults(np.array([p[0] for p in parsed]), np.array([p[3] for p in parsed], dtype=np.int8),
                       np.array([p[1] for p in parsed]), np.array([p[2] for p in parsed]),
                       np.array([p[4] for p in parsed]), names, features, done)
