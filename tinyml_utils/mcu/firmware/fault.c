#include "fault.h"
#include "semihost.h"

extern uint32_t _sstack, _estack;   /* the stack's limits, from the linker script */

/* System Control Block: the fault status and address registers. */
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)   /* configurable fault status */
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)   /* hard fault status */
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)  /* memory-management fault address */
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)   /* bus fault address */
#define CFSR_MSTKERR (1u << 4)    /* the MPU refused the exception's stacking */
#define CFSR_MMARVALID (1u << 7)
#define CFSR_STKERR (1u << 12)    /* a bus error while stacking */
#define CFSR_BFARVALID (1u << 15)
#define CFSR_STKOF (1u << 20)     /* Armv8-M: the stack pointer went below its limit (MSPLIM) */

/* Room the report needs on the stack (sh_write and its callers), bytes; as text for the shim. */
#define REPORT_STACK_BYTES "256"

static const char *const fault_names[] = {"?", "?", "NMI", "hard fault", "memory-management fault",
                                          "bus fault", "usage fault", "secure fault"};

/* A stack overflow leaves no valid frame (the core could not stack it, or stacked it below the
 * stack), so there is no pc to report: say where the stack pointer went instead. */
__attribute__((noreturn)) static void stack_overflow_report(const uint32_t *sp) {
  sh_write("FAULT: stack overflow sp="); sh_write_hex((uint32_t)sp);
  sh_write(" stack="); sh_write_hex((uint32_t)&_sstack);
  sh_write(".."); sh_write_hex((uint32_t)&_estack);
  sh_write("\n");
  sh_exit(FAULT_EXIT_STACK_OVERFLOW);
}

__attribute__((used, noreturn)) void fault_report(const uint32_t *frame, uint32_t ipsr) {
  uint32_t number = ipsr & 0x1FFu, cfsr = SCB_CFSR;
  if (frame < &_sstack || (cfsr & (CFSR_MSTKERR | CFSR_STKERR | CFSR_STKOF))) stack_overflow_report(frame);
  sh_write("FAULT: ");
  sh_write(number < 8 ? fault_names[number] : "unexpected exception");
  sh_write(" pc="); sh_write_hex(frame[6]);
  sh_write(" lr="); sh_write_hex(frame[5]);
  sh_write(" cfsr="); sh_write_hex(cfsr);
  sh_write(" hfsr="); sh_write_hex(SCB_HFSR);
  if (cfsr & CFSR_MMARVALID) { sh_write(" address="); sh_write_hex(SCB_MMFAR); }
  else if (cfsr & CFSR_BFARVALID) { sh_write(" address="); sh_write_hex(SCB_BFAR); }
  if (cfsr & (1u << 25)) sh_write(" (division by zero)");
  if (cfsr & (1u << 24)) sh_write(" (unaligned access)");
  if (cfsr & (1u << 19)) sh_write(" (coprocessor disabled: FPU not enabled?)");
  sh_write("\n");
  sh_exit(FAULT_EXIT);
}

/* A fault stacks r0-r3, r12, lr, pc and xPSR on the stack in use, then enters the handler; bit 2
 * of lr (EXC_RETURN) says which stack that was. The shim passes the frame and the exception
 * number to fault_report(). If the frame lies within REPORT_STACK_BYTES of the stack's bottom (or
 * below it: the stack overflowed), the report itself would overflow the stack again, so it runs
 * on a fresh stack from the top instead; nothing returns from a fault, so nothing is lost. */
__attribute__((naked)) void Fault_Handler(void) {
  __asm__ volatile(
      "tst lr, #4\n"
      "ite eq\n"
      "mrseq r0, msp\n"
      "mrsne r0, psp\n"
      "mrs r1, ipsr\n"
      "ldr r2, =_sstack + " REPORT_STACK_BYTES "\n"
      "cmp r0, r2\n"
      "itt lo\n"
      "ldrlo r2, =_estack\n"
      "movlo sp, r2\n"
      "b fault_report\n");
}
