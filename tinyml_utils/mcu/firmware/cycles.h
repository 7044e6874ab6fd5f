/* Counting instructions on QEMU with SysTick.
 *
 * QEMU's Cortex-M has no working cycle counter (DWT CYCCNT reads 0). With `-icount shift=0`
 * every instruction advances virtual time by exactly 1 ns, and SysTick, clocked from the 25 MHz
 * system clock of the mps2 boards, then ticks once every 40 instructions. So
 * instructions = 40 * ticks, deterministic for a given program and input (+/- 40 per
 * measurement). SysTick is a 24-bit down-counter; the interrupt counts its wraps, so regions of
 * any length can be measured. */
#ifndef CYCLES_H
#define CYCLES_H
#include <stdint.h>

#define INSTRUCTIONS_PER_TICK 40u

void ticks_start(void);          /* enable SysTick (call once at start-up) */
uint64_t ticks_now(void);        /* ticks since ticks_start(), monotonic */
void SysTick_Handler(void);      /* counts wraps of the 24-bit counter (in the vector table) */

#endif
