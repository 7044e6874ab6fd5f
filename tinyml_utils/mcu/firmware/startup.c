/* Start-up code: the vector table, the reset handler and the stack guard.
 *
 * A Cortex-M core starts by reading two words at the start of flash: the initial stack pointer
 * and the address of the reset handler. Everything a C program takes for granted (initialised
 * globals, zeroed globals, a working FPU) is done here, in plain C, before main(). Faults go to
 * firmware/fault.c, which reports them (a stack overflow included) instead of hanging. */
#include <stdint.h>
#include "cycles.h"
#include "fault.h"
#include "semihost.h"
#include "startup.h"

/* Symbols defined by the linker script (their addresses are what matter). */
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
int main(void);

/* System Control Block and memory protection unit (Armv7-M) registers. */
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)  /* coprocessor access control */
#define MPU_CTRL (*(volatile uint32_t *)0xE000ED94u)   /* MPU control */
#define MPU_RBAR (*(volatile uint32_t *)0xE000ED9Cu)   /* region base address (and region number) */
#define MPU_RASR (*(volatile uint32_t *)0xE000EDA0u)   /* region attributes and size */

/* The largest stack guard: 256 MB below RAM stays clear of flash, which starts at address 0. */
#define STACK_GUARD_MAX_BYTES (1u << 28)

/* The stack is the lowest part of RAM (see the linker script), so a stack that overflows leaves
 * RAM. Writes there would not stop the program (QEMU ignores them; a real part may have another
 * memory there), so the guard makes them fault, and firmware/fault.c reports a stack overflow:
 * - Armv8-M (Cortex-M55) has a stack limit register: the core faults (STKOF) as soon as the
 *   stack pointer goes below MSPLIM;
 * - Armv7-M (Cortex-M4, M7) has none: an MPU region without access rights covers the memory
 *   just below RAM (as large as the address's alignment allows, up to 256 MB), so that even a
 *   large stack frame that jumps past the bottom faults on its first write.
 * Both are checked by the hardware on every access: no instruction is added to the program. */
static void stack_guard_enable(void) {
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
  __asm__ volatile("msr msplim, %0" : : "r"(&_sstack));
#else
  uint32_t bottom = (uint32_t)&_sstack;
  uint32_t size = bottom & (0u - bottom);   /* the largest power of two that divides the address */
  if (size > STACK_GUARD_MAX_BYTES) size = STACK_GUARD_MAX_BYTES;
  MPU_RBAR = (bottom - size) | (1u << 4) | 0u;     /* base, VALID, region 0 */
  MPU_RASR = (1u << 28)                            /* XN: no instruction fetch */
             | (0u << 24)                          /* AP = 0: no access at all */
             | ((31u - (uint32_t)__builtin_clz(size) - 1u) << 1)  /* SIZE: 2^(SIZE + 1) bytes */
             | 1u;                                 /* enable the region */
  MPU_CTRL = (1u << 2) | 1u;   /* PRIVDEFENA: elsewhere the default memory map; enable the MPU */
  __asm__ volatile("dsb\n isb" ::: "memory");
#endif
}

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

  /* 3. Paint the free stack (from the start of RAM up to just below the current stack pointer)
   *    so that stack_peak_bytes() can later find the deepest word ever written. */
  uint32_t *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (dst = &_sstack; dst < sp - 4;) *dst++ = STACK_PAINT;

  /* 4. Make running off the bottom of the stack a fault, not a silent overwrite. */
  stack_guard_enable();

  sh_exit(main());
}

uint32_t stack_size_bytes(void) { return (uint32_t)((char *)&_estack - (char *)&_sstack); }

uint32_t stack_peak_bytes(void) {
  const uint32_t *p = &_sstack;
  while (p < &_estack && *p == STACK_PAINT) p++;   /* the first overwritten word */
  return (uint32_t)((const char *)&_estack - (const char *)p);
}

int stack_overflowed(void) { return _sstack != STACK_PAINT; }

/* Cortex-M exception numbers: 1 reset, 2 NMI, 3 hard fault, 4-6 memory/bus/usage fault,
 * 7 secure fault (Armv8-M), 11 SVCall, 12 debug monitor, 14 PendSV, 15 SysTick. No device
 * interrupt is enabled, so the table stops after SysTick. */
__attribute__((section(".isr_vector"), used)) static const void *const vectors[16] = {
  &_estack, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
  Fault_Handler, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, SysTick_Handler,
};
