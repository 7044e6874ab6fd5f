/* What a crash reports (the start-up code, startup.c, puts Fault_Handler in the vector table of
 * every program the course runs on QEMU): one line on the host, then an exit code the host
 * understands.
 *
 *   FAULT: <exception> pc=<address> lr=<address> cfsr=... hfsr=... [address=...] [(cause)]   exit 99
 *   FAULT: stack overflow sp=<address> stack=<lowest>..<top>                                exit 4
 *
 * The host turns the pc into a function and a line with addr2line (emulator.py, mcu/run.py).
 * The linker script defines _sstack and _estack, the lowest and the highest address the stack
 * may use. */
#ifndef FAULT_H
#define FAULT_H
#include <stdint.h>

#define FAULT_EXIT 99                /* a hard, memory, bus or usage fault */
#define FAULT_EXIT_STACK_OVERFLOW 4  /* the stack grew below _sstack */

/* In the vector table for every fault: finds the frame the core stacked and calls fault_report(). */
void Fault_Handler(void);

/* Print the fault line for the stacked frame (r0-r3, r12, lr, pc, xPSR) and exception number; exit. */
__attribute__((noreturn)) void fault_report(const uint32_t *frame, uint32_t ipsr);

#endif
