"""Deployment to an emulated microcontroller: board profiles, firmware, build, run, measure, debug.

* `boards`: a QEMU machine paired with a real part's flash, SRAM and clock; the linker script.
* `build`: arm-none-eabi-gcc with that script; section sizes; `DoesNotFit` says by how much.
* `run`: QEMU with -icount and a timeout; exit codes and faults become clear errors.
* `frontend`: the C tables of the on-device MFCC front end, written from `tinyml_utils.mfcc`.
* `kws`: the keyword-spotting firmware around the engine's generated model; batches of clips.
* `memory`: where a firmware's bytes go, and which boards it fits.
* `debug`: the device's per-layer dumps against the integer interpreter; planted bugs.
* `streaming`: a test recording, the streaming detector, its host reference and its score.

The C sources (start-up code, front end, applications) live in `firmware/`.
"""
