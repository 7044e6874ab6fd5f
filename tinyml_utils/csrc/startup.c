/* The smallest start-up code for a Cortex-M: a vector table whose first two words are the initial
 * stack pointer and the reset handler, and a reset handler that prepares RAM and calls main().
 * Faults go to fault.c, which reports the fault and its program counter instead of hanging. */
#include <stdint.h>
#include "semihost.h"
#include "cycles.h"
#include "fault.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;  /* from the linker script */
int main(void);

void Reset_Handler(void) {
  uint32_t *src = &_sidata, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;          /* initialised data: copy from flash to RAM */
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;   /* zero-initialised data */
  sh_exit(main());
}

/* Cortex-M exception numbers: 1 reset, 2 NMI, 3 hard fault, 4-6 memory/bus/usage fault,
 * 11 SVCall, 12 debug monitor, 14 PendSV, 15 SysTick. */
__attribute__((section(".isr_vector"), used)) static const void *const vectors[16] = {
  &_estack, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
  0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, SysTick_Handler,
};
