/* Start-up code: the vector table, the reset handler and the fault handlers.
 *
 * A Cortex-M core starts by reading two words at the start of flash: the initial stack pointer
 * and the address of the reset handler. Everything a C program takes for granted (initialised
 * globals, zeroed globals, a working FPU) is done here, in plain C, before main(). */
#include <stdint.h>
#include "cycles.h"
#include "semihost.h"
#include "startup.h"

/* Symbols defined by the linker script (their addresses are what matter). */
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
int main(void);

/* System Control Block registers. */
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)  /* coprocessor access control */
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)   /* configurable fault status */
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)   /* hard fault status */
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)  /* memory-management fault address */
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)   /* bus fault address */

void Reset_Handler(void) {
  /* 1. Enable the FPU (coprocessors 10 and 11, full access) before any floating-point
   *    instruction runs; without it the first one is a usage fault. */
  SCB_CPACR |= 0xFu << 20;
  __asm__ volatile("dsb\n isb" ::: "memory");

  /* 2. Copy the initial values of .data from flash to RAM, then zero .bss. These loops are why
   *    the firmware is built with -fno-tree-loop-distribute-patterns: otherwise GCC replaces
   *    them with calls to memcpy/memset. */
  uint32_t *src = &_sidata, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;

  /* 3. Paint the free stack (from the end of .bss up to just below the current stack pointer)
   *    so that stack_peak_bytes() can later find the deepest word ever written. */
  uint32_t *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (dst = &_sstack; dst < sp - 4;) *dst++ = STACK_PAINT;

  sh_exit(main());
}

uint32_t stack_size_bytes(void) { return (uint32_t)((char *)&_estack - (char *)&_sstack); }

uint32_t stack_peak_bytes(void) {
  const uint32_t *p = &_sstack;
  while (p < &_estack && *p == STACK_PAINT) p++;   /* the first overwritten word */
  return (uint32_t)((const char *)&_estack - (const char *)p);
}

int stack_overflowed(void) { return _sstack != STACK_PAINT; }

/* A fault stacks r0-r3, r12, lr, pc and xPSR on the stack in use, then enters the handler.
 * The assembly shim passes that frame and the exception number to fault_report(). */
static const char *const fault_names[] = {"?", "?", "NMI", "hard fault", "memory-management fault",
                                          "bus fault", "usage fault", "secure fault"};

__attribute__((used, noreturn)) void fault_report(const uint32_t *frame, uint32_t ipsr) {
  uint32_t number = ipsr & 0x1FFu, cfsr = SCB_CFSR;
  sh_write("FAULT: ");
  sh_write(number < 8 ? fault_names[number] : "unexpected exception");
  sh_write(" pc="); sh_write_hex(frame[6]);
  sh_write(" lr="); sh_write_hex(frame[5]);
  sh_write(" cfsr="); sh_write_hex(cfsr);
  sh_write(" hfsr="); sh_write_hex(SCB_HFSR);
  if (cfsr & (1u << 7)) { sh_write(" address="); sh_write_hex(SCB_MMFAR); }         /* MMARVALID */
  else if (cfsr & (1u << 15)) { sh_write(" address="); sh_write_hex(SCB_BFAR); }    /* BFARVALID */
  if (cfsr & (1u << 25)) sh_write(" (division by zero)");
  if (cfsr & (1u << 24)) sh_write(" (unaligned access)");
  if (cfsr & (1u << 19)) sh_write(" (coprocessor disabled: FPU not enabled?)");
  sh_write("\n");
  sh_exit(EXIT_FAULT);
}

__attribute__((naked)) void Fault_Handler(void) {
  __asm__ volatile(
      "tst lr, #4\n"       /* bit 2 of EXC_RETURN: which stack held the frame */
      "ite eq\n"
      "mrseq r0, msp\n"
      "mrsne r0, psp\n"
      "mrs r1, ipsr\n"
      "b fault_report\n");
}

/* Cortex-M exception numbers: 1 reset, 2 NMI, 3 hard fault, 4-6 memory/bus/usage fault,
 * 7 secure fault (Armv8-M), 11 SVCall, 12 debug monitor, 14 PendSV, 15 SysTick. No device
 * interrupt is enabled, so the table stops after SysTick. */
__attribute__((section(".isr_vector"), used)) static const void *const vectors[16] = {
  &_estack, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
  Fault_Handler, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, SysTick_Handler,
};
