/* Start-up code of the course's firmware: what runs before main() and after a crash.
 *
 * Memory layout (from the linker script): flash holds the vector table, code and constants;
 * RAM holds the stack, then .data and .bss. The stack grows down towards the start of RAM, below
 * which a guard makes any access fault (a stack overflow, reported by firmware/fault.c). At reset the
 * free stack below the stack pointer is "painted" with a known word; afterwards the lowest
 * overwritten word shows how deep the stack ever went. */
#ifndef STARTUP_H
#define STARTUP_H
#include <stdint.h>
#include "fault.h"

#define STACK_PAINT 0xA5A5A5A5u   /* the word the unused stack is filled with at reset */

/* Exit codes the host understands (see run.py). */
#define EXIT_OK 0
#define EXIT_NO_INPUT 2           /* an input file could not be opened */
#define EXIT_BAD_INPUT 3          /* an input file is truncated or has the wrong format */
#define EXIT_STACK_OVERFLOW FAULT_EXIT_STACK_OVERFLOW  /* 4: the stack reached its bottom */
#define EXIT_FAULT FAULT_EXIT     /* 99: a hard, memory, bus or usage fault */

uint32_t stack_peak_bytes(void);  /* deepest stack use since reset, bytes */
uint32_t stack_size_bytes(void);  /* bytes of the stack region (RAM below .data) */
int stack_overflowed(void);       /* 1 if the stack used its last word (the guard is next) */

#endif
