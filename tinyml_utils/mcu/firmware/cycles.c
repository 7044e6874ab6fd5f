#include "cycles.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)  /* control and status */
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)  /* reload value */
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)  /* current value (counts down) */
#define SYST_RELOAD 0x00FFFFFFu

static volatile uint32_t wraps;

void SysTick_Handler(void) { wraps++; }

void ticks_start(void) {
  SYST_RVR = SYST_RELOAD;
  SYST_CVR = 0;             /* any write clears the counter; it reloads on the next tick */
  SYST_CSR = 7;             /* enable, interrupt on wrap, processor clock */
  /* The counter reads 0 until its first tick reloads it: a read in that window would look like a
   * whole wrap has passed. Wait for the reload, then start counting wraps from zero. */
  while (SYST_CVR == 0) {}
  wraps = 0;
}

uint64_t ticks_now(void) {
  uint32_t before, value;
  do {                      /* re-read if a wrap interrupt lands between the two reads */
    before = wraps;
    value = SYST_CVR;
  } while (before != wraps);
  return (uint64_t)before * (SYST_RELOAD + 1u) + (SYST_RELOAD - value);
}
