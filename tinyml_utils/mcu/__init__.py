"""Deployment to an emulated microcontroller: board profiles, firmware, build, run, measure, debug.

`boards` pairs a QEMU machine with the memory of a real part; `build` compiles firmware with
arm-none-eabi-gcc and a linker script that enforces that memory; `run` runs it on QEMU and
parses what it reports; `frontend` writes the C tables of the on-device MFCC front end;
`debug` diffs the device's per-layer dumps against the integer reference; `streaming` makes a
test stream and scores keyword detections. The C sources live in `firmware/`.
"""
