#include "report.h"
#include "semihost.h"
#include "startup.h"

static char line[LINE_CAPACITY];
static int32_t length;

void line_str(const char *text) {
  while (*text && length < LINE_CAPACITY - 2) line[length++] = *text++;   /* room for "\n\0" */
}

void line_start(const char *text) {
  length = 0;
  line_str(text);
}

void line_int(int32_t value) {
  char digits[12];
  int32_t n = 0;
  uint32_t magnitude = value < 0 ? 0u - (uint32_t)value : (uint32_t)value;
  do { digits[n++] = (char)('0' + magnitude % 10u); magnitude /= 10u; } while (magnitude);
  line_str(" ");
  if (value < 0) line_str("-");
  while (n > 0 && length < LINE_CAPACITY - 2) line[length++] = digits[--n];
}

void line_end(void) {
  line[length++] = '\n';
  line[length] = '\0';
  sh_write(line);
  length = 0;
}

int report_failure(const char *message, int code) {
  sh_write("ERROR: ");
  sh_write(message);
  sh_write("\n");
  return code;
}

int report_stack_and_finish(int32_t arena_bytes) {
  line_start("stack"); line_int((int32_t)stack_peak_bytes());
  line_str(" of"); line_int((int32_t)stack_size_bytes());
  line_str(" arena"); line_int(arena_bytes);
  line_end();
  if (stack_overflowed()) return report_failure("the stack used its last word", EXIT_STACK_OVERFLOW);
  return EXIT_OK;
}
