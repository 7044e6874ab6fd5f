"""Deployment to an emulated microcontroller: board profiles, firmware, build, run, measure, debug.

* `boards`: a QEMU machine paired with a real part's flash, SRAM and clock; the linker script.
* `build`: the one road from C to the device (start-up code, the board's linker script, its ABI);
  section sizes, bytes per object; `DoesNotFit` says by how much.
* `programs`: one C file or a few sources on the default board (`run_c_program`).
* `run`: QEMU with -icount and a timeout; exit codes and faults become clear errors.
* `models_on_device`: the engine's generated models in one program on the device (`run_on_qemu`).
* `measure`: a model's instructions per layer, arena and flash, per kernel set; the per-layer table.
* `frontend`: the C tables of the on-device MFCC front end, written from `tinyml_utils.mfcc`.
* `kws`: the keyword-spotting firmware around the engine's generated model; batches of clips.
* `memory`: where a firmware's bytes go, and which boards it fits.
* `debug`: the device's per-layer dumps against the integer interpreter; planted bugs.
* `streaming`: a test recording, the streaming detector, its host reference and its score.

The C sources live in `firmware/`: the device support every program links (start-up code,
fault reports, semihosting, SysTick), the applications, the model harness and the front end.
"""
