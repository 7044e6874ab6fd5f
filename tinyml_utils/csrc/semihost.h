/* Semihosting: the program on the emulated board asks the host (QEMU) to do I/O for it.
 * The program puts an operation number in r0 and an argument in r1, then executes
 * `bkpt 0xAB`; QEMU (started with -semihosting-config enable=on) performs the operation.
 * Without that option the breakpoint has no debugger to go to and the core locks up. */
#ifndef SEMIHOST_H
#define SEMIHOST_H
#include <stdint.h>

void sh_write(const char *text);                 /* print a NUL-terminated string on the host */
void sh_write_int(int32_t value);                /* print a decimal integer */
__attribute__((noreturn)) void sh_exit(int code); /* stop QEMU; the host sees `code` as its exit status */

#endif
