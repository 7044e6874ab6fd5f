"""Streaming keyword detection: a test recording, the device run, a host reference, the score.

A recording of `seconds` of background noise gets keywords (and other words, which must not
trigger) spoken by held-out voices at known times. The device (`firmware/kws_stream.c`) turns it
into features frame by frame, runs the model every `infer_every` hops of 20 ms, averages the
posteriors of the last `average_window` inferences and reports a detection when a keyword's
average reaches `threshold`, then stays quiet for `suppression_hops`. `reference` does the same
on the host with the integer interpreter, and `score` counts hits, misses and false alarms.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, mix_at_snr, read_wav, require_int16, to_int16, trim_silence
from ..kws_data import CLASSES, dataset_root
from ..kws_synth import ACCENTS, KEYWORDS, UNKNOWN_WORDS, espeak
from ..mfcc import FRAME_LENGTH, FRAME_STEP, NUM_FRAMES
from .build import Firmware
from .run import DeviceRun, run

FIRST_KEYWORD = 2  # classes 0 and 1 are _silence_ and _unknown_


@dataclass(frozen=True)
class DetectorConfig:
    """Posterior smoothing: inference every `infer_every` hops (20 ms each), average of the last
    `average_window` posteriors, detection at `threshold`, then `suppression_hops` of silence.

    The defaults were chosen on two 60-second streams (seeds 11 and 12) with the CI-size model:
    an inference every 200 ms is within a 64 MHz Cortex-M4's budget with the engine's kernels,
    and averaging two of them at a 0.7 threshold found 39 of 40 keywords with one false alarm.
    The chapter evaluates them on a different stream."""
    infer_every: int = 10
    average_window: int = 2
    threshold: float = 0.7
    suppression_hops: int = 50


@dataclass
class Event:
    """A word in the test recording: its class and where it is (seconds)."""
    word: str
    label: int
    start: float
    end: float


def hop_time(hop: int) -> float:
    """Seconds at the end of the 1-second window the model sees after hop `hop`."""
    return (FRAME_STEP * hop + (FRAME_LENGTH - FRAME_STEP)) / SAMPLE_RATE


def make_stream(seconds: float = 30.0, seed: int = 0, spacing: float = 2.0, snr_db=(8.0, 20.0),
                unknown_fraction: float = 0.25) -> tuple[np.ndarray, list[Event]]:
    """A recording (num_samples,) int16 and its words: keywords and some other words, one every
    ~`spacing` s, spoken by test voices over the dataset's background noises."""
    rng = np.random.default_rng(seed)
    root = dataset_root("synthetic")
    split_of = json.loads((root / "speakers.json").read_text())["split_of_variant"]
    test_voices = sorted(v for v, s in split_of.items() if s == "testing")
    # The background: the dataset's noise recordings (20 s each) one after another, in random order.
    noises = [read_wav(p).astype(np.float64) for p in sorted((root / "_background_noise_").glob("*.wav"))]
    n = int(seconds * SAMPLE_RATE)
    order = rng.permutation(len(noises))
    background = np.concatenate([noises[order[i % len(noises)]] for i in range(n // len(noises[0]) + 1)])[:n]
    speech = np.zeros(n)
    events = []
    t = 1.0
    while t + 1.0 < seconds:
        word = str(rng.choice(UNKNOWN_WORDS)) if rng.random() < unknown_fraction else str(rng.choice(KEYWORDS))
        voice = f"{rng.choice(ACCENTS)}+{rng.choice(test_voices)}"
        said = trim_silence(espeak(word, voice, speed=int(rng.integers(140, 200)), pitch=int(rng.integers(25, 75))))[:SAMPLE_RATE]
        start = int((t + rng.uniform(0, 0.4)) * SAMPLE_RATE)
        said = said / (np.abs(said).max() + 1e-9) * 10 ** (rng.uniform(-16, -4) / 20) * 32767
        speech[start:start + len(said)] += said
        label = CLASSES.index(word) if word in KEYWORDS else CLASSES.index("_unknown_")
        events.append(Event(word, label, start / SAMPLE_RATE, (start + len(said)) / SAMPLE_RATE))
        t += spacing + rng.uniform(-0.3, 0.3)
    # One noise level for the whole recording, set by the SNR against the speech's loudness.
    mixed = mix_at_snr(speech, background, float(rng.uniform(*snr_db)))
    return to_int16(np.clip(mixed, -32767, 32767)), events


def write_stream(path: str | Path, samples: np.ndarray, config: DetectorConfig, print_logits: bool = True,
                 write_features: bool = False) -> Path:
    """Write the firmware's stream.bin: header with the detector settings, then the (num_samples,) int16 recording."""
    samples = require_int16(samples, "write_stream")  # a float recording would be written as zeros
    if samples.ndim != 1:
        raise ValueError(f"write_stream takes one mono recording shaped (num_samples,), got shape {samples.shape}")
    flags = int(print_logits) | (2 * int(write_features))
    with open(path, "wb") as f:
        f.write(b"KWSS" + struct.pack("<IIIfII", len(samples), config.infer_every, config.average_window,
                                      config.threshold, config.suppression_hops, flags))
        f.write(np.asarray(samples, dtype="<i2").tobytes())
    return Path(path)


@dataclass
class StreamResult:
    """Detections (hop, class, score) and, per inference, its hop and int8 logits."""
    detections: list
    inference_hops: np.ndarray
    logits: np.ndarray
    ticks: dict                 # fe, nn, post, worst_hop totals (SysTick ticks)
    hops: int
    features: np.ndarray | None = None
    run: DeviceRun | None = None

    def instructions(self, key: str) -> float:
        return self.run.instructions(self.ticks[key]) if self.run else float(self.ticks[key])


def run_stream(firmware: Firmware, samples: np.ndarray, config: DetectorConfig, workdir: str | Path,
               write_features: bool = False, timeout: float = 300.0) -> StreamResult:
    """Run the streaming firmware on a recording; returns what the device reported."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_stream(workdir / "stream.bin", samples, config, True, write_features)
    done = run(firmware, workdir, timeout=timeout)
    inferences = done.lines("inference")
    summary = done.lines("summary")[0]
    ticks = {k: int(summary[summary.index(k) + 1]) for k in ("fe", "nn", "post", "worst_hop")}
    features = np.fromfile(workdir / "features.bin", dtype=np.int8).reshape(-1, 10) if write_features else None
    return StreamResult([(int(w[0]), int(w[2]), int(w[4]) / 1000) for w in done.lines("detect")],
                        np.array([int(w[0]) for w in inferences]),
                        np.array([[int(v) for v in w[2:]] for w in inferences], dtype=np.int8),
                        ticks, int(summary[summary.index("hops") + 1]), features, done)


def softmax_f32(logits: np.ndarray, scale: float) -> np.ndarray:
    """The device's posteriors in float32: softmax(scale * (logits - max)), (K, classes)."""
    z = np.float32(scale) * (logits.astype(np.float32) - logits.max(axis=1, keepdims=True).astype(np.float32))
    e = np.exp(z.astype(np.float32))
    return (e / e.sum(axis=1, keepdims=True, dtype=np.float32)).astype(np.float32)


def smooth_and_detect(hops: np.ndarray, logits: np.ndarray, output_scale: float, config: DetectorConfig) -> list:
    """The device's detector on the host: [(hop, class, score)] from per-inference int8 logits."""
    post = softmax_f32(logits, output_scale)
    ring = np.zeros((config.average_window, post.shape[1]), dtype=np.float32)
    detections, last = [], -1_000_000
    for k, (hop, p) in enumerate(zip(hops, post)):
        ring[k % config.average_window] = p
        count = min(k + 1, config.average_window)
        avg = ring[:count, FIRST_KEYWORD:].sum(axis=0, dtype=np.float32) / np.float32(count)
        best = int(np.argmax(avg))
        if avg[best] >= np.float32(config.threshold) and hop - last >= config.suppression_hops:
            last = int(hop)
            detections.append((int(hop), best + FIRST_KEYWORD, float(avg[best])))
    return detections


def windows(frame_features: np.ndarray, config: DetectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """(hops, windows (K, 49, 10)) that the device classifies, from per-frame features (T, 10).

    After hop h the device holds frames 0..h-1; it runs the model when h >= 49 and h is a
    multiple of `infer_every`, on frames h-49..h-1.
    """
    hops = np.array([h for h in range(NUM_FRAMES, len(frame_features) + 1) if h % config.infer_every == 0])
    return hops, np.stack([frame_features[h - NUM_FRAMES:h] for h in hops])


def reference(int_model, samples: np.ndarray, config: DetectorConfig) -> StreamResult:
    """The whole streaming pipeline on the host: Python features, integer interpreter, detector."""
    from ..quant import interpreter
    from .frontend import stream_features

    features = interpreter.quantize_input(int_model, stream_features(samples)).reshape(-1, 10)
    hops, x = windows(features, config)
    logits = interpreter.run_batched(int_model, x).reshape(len(hops), -1)
    scale = int_model.tensor(int_model.output).scale
    return StreamResult(smooth_and_detect(hops, logits, scale, config), hops, logits, {}, len(samples) // FRAME_STEP,
                        features)


def score(detections: list, events: list[Event], late: float = 1.0) -> dict:
    """Hits, misses and false alarms. A detection of class c at time t (window end) hits an
    unmatched keyword event of class c when start <= t <= end + `late` seconds."""
    matched, hits, false_alarms = set(), [], []
    for hop, label, s in detections:
        t = hop_time(hop)
        match = next((i for i, e in enumerate(events) if i not in matched and e.label == label
                      and e.start <= t <= e.end + late), None)
        if match is None:
            false_alarms.append((hop, label, s))
        else:
            matched.add(match)
            hits.append((hop, label, s))
    keywords = [i for i, e in enumerate(events) if e.label >= FIRST_KEYWORD]
    misses = [events[i] for i in keywords if i not in matched]
    return {"keywords": len(keywords), "hits": len(hits), "misses": len(misses),
            "false_alarms": len(false_alarms), "missed": misses, "false": false_alarms}
