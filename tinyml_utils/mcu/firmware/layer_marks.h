/* Per-layer marks: model_run() calls model_layer_hook() after each layer (the firmware is
 * built with -DMODEL_LAYER_HOOK); the hook reads SysTick, so the instructions of layer i are
 * (layer_marks[i + 1] - layer_marks[i]) * instructions per tick. The debug build
 * (-DKWS_DUMP_LAYERS) also writes every layer's int8 output to a host file. */
#ifndef LAYER_MARKS_H
#define LAYER_MARKS_H
#include <stdint.h>
#include "model.h"

extern uint64_t layer_marks[MODEL_NUM_LAYERS + 1];

void layer_marks_start(void);        /* call right before model_run() */
void layer_dump_open(void);          /* debug build: open layers.bin for the dumps (else no-op) */
void layer_dump_close(void);

#endif
