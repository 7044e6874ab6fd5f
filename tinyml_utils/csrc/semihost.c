#include "semihost.h"

#define SYS_WRITE0 0x04          /* print a NUL-terminated string */
#define SYS_EXIT_EXTENDED 0x20   /* exit with a reason and a status code (plain SYS_EXIT cannot
                                    carry a code on 32-bit ARM) */
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static int semihost_call(int op, const void *arg) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void sh_write(const char *text) { semihost_call(SYS_WRITE0, text); }

void sh_write_int(int32_t value) {
  char buf[12];
  char *p = buf + sizeof buf;
  uint32_t magnitude = value < 0 ? 0u - (uint32_t)value : (uint32_t)value;
  *--p = '\0';
  do { *--p = (char)('0' + magnitude % 10u); magnitude /= 10u; } while (magnitude);
  if (value < 0) *--p = '-';
  sh_write(p);
}

void sh_exit(int code) {
  const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
  semihost_call(SYS_EXIT_EXTENDED, block);
  for (;;) {}
}
