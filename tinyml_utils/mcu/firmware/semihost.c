#include "semihost.h"

/* Operation numbers of the Arm semihosting specification. */
#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE0 0x04          /* print a NUL-terminated string */
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_FLEN 0x0C
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

void sh_write_hex(uint32_t value) {
  char buf[11] = "0x";
  for (int i = 0; i < 8; i++) buf[2 + i] = "0123456789abcdef"[(value >> (28 - 4 * i)) & 0xFu];
  buf[10] = '\0';
  sh_write(buf);
}

void sh_exit(int code) {
  const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
  semihost_call(SYS_EXIT_EXTENDED, block);
  for (;;) {}
}

int sh_open(const char *path, const char *mode) {
  /* SYS_OPEN encodes fopen's mode as a number: "r" 0, "rb" 1, ..., "w" 4, "wb" 5. */
  uint32_t length = 0, code = 1;
  while (path[length]) length++;
  if (mode[0] == 'w') code = 5;
  const uint32_t block[3] = {(uint32_t)path, code, length};
  return semihost_call(SYS_OPEN, block);
}

int32_t sh_read(int handle, void *buffer, int32_t bytes) {
  const uint32_t block[3] = {(uint32_t)handle, (uint32_t)buffer, (uint32_t)bytes};
  int32_t not_read = semihost_call(SYS_READ, block);   /* the call returns the bytes NOT read */
  return not_read < 0 || not_read > bytes ? -1 : bytes - not_read;
}

int32_t sh_write_file(int handle, const void *data, int32_t bytes) {
  const uint32_t block[3] = {(uint32_t)handle, (uint32_t)data, (uint32_t)bytes};
  return semihost_call(SYS_WRITE, block);
}

int32_t sh_file_length(int handle) {
  const uint32_t block[1] = {(uint32_t)handle};
  return semihost_call(SYS_FLEN, block);
}

int sh_close(int handle) {
  const uint32_t block[1] = {(uint32_t)handle};
  return semihost_call(SYS_CLOSE, block);
}
