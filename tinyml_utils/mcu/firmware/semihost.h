/* Semihosting: the program on the emulated board asks the host (QEMU) to do I/O for it.
 * The program puts an operation number in r0 and an argument in r1, then executes
 * `bkpt 0xAB`; QEMU (started with -semihosting-config enable=on) performs the operation.
 * Without that option the breakpoint has no debugger to go to and the core locks up.
 *
 * Besides text output and the exit code, the host's files can be opened, read and written:
 * that is how firmware reads a batch of test clips and writes debug dumps. Paths are relative
 * to the directory QEMU was started in. */
#ifndef SEMIHOST_H
#define SEMIHOST_H
#include <stdint.h>

void sh_write(const char *text);                 /* print a NUL-terminated string on the host */
void sh_write_int(int32_t value);                /* print a decimal integer */
void sh_write_hex(uint32_t value);               /* print 0x followed by 8 hex digits */
__attribute__((noreturn)) void sh_exit(int code); /* stop QEMU; the host sees `code` as its exit status */

/* Host files. Modes as in C's fopen: "rb" reading, "wb" writing (created or truncated). */
int sh_open(const char *path, const char *mode);            /* a handle >= 0, or -1 on failure */
int32_t sh_read(int handle, void *buffer, int32_t bytes);   /* bytes read (fewer at end of file), -1 on error */
int32_t sh_write_file(int handle, const void *data, int32_t bytes); /* 0 when all written, else bytes not written */
int32_t sh_file_length(int handle);                         /* bytes in the file, -1 on error */
int sh_close(int handle);                                   /* 0 on success */

#endif
