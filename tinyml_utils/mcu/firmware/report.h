/* One line of text built in a buffer, then printed with a single semihosting call (each call
 * stops the emulated core and costs host time, not device instructions). */
#ifndef REPORT_H
#define REPORT_H
#include <stdint.h>

#define LINE_CAPACITY 640

void line_start(const char *text);   /* begin a new line with `text` */
void line_str(const char *text);     /* append text */
void line_int(int32_t value);        /* append " <value>" */
void line_end(void);                 /* append a newline and print the line */

/* Print "ERROR: <message>" and return `code`, the exit code for main to return. */
int report_failure(const char *message, int code);

/* Print the closing "stack <peak> of <size> arena <bytes>" line and return main's exit code:
 * EXIT_OK, or EXIT_STACK_OVERFLOW if the stack used its last word (no painted word is left). */
int report_stack_and_finish(int32_t arena_bytes);

#endif
