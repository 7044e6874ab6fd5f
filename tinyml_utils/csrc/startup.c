/* The smallest start-up code for a Cortex-M: a vector table whose first two words are the initial
 * stack pointer and the reset handler, a reset handler that prepares RAM and calls main(), and a
 * fault handler that reports instead of hanging. */
#include <stdint.h>
#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;  /* from the linker script */
int main(void);

void Reset_Handler(void) {
  uint32_t *src = &_sidata, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;          /* initialised data: copy from flash to RAM */
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;   /* zero-initialised data */
  sh_exit(main());
}

void Fault_Handler(void) {
  sh_write("FAULT: the program crashed (hard fault, memory fault, bus fault or usage fault)\n");
  sh_exit(99);
}

__attribute__((section(".isr_vector"), used)) static const void *const vectors[] = {
  &_estack, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
};
