/* fuzz-common.h - what every libFuzzer target here shares: quiet logs, fatal criticals, and
 * cutting an input into text fields
 *
 * A g_critical() is a broken precondition (g_return_if_fail) reached from outside input, which
 * is a bug however gracefully GLib recovers from it; it aborts so that libFuzzer keeps the
 * input. Debug, info, messages and warnings would only slow the run down and are dropped.
 */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

static GLogWriterOutput
fuzz_log_writer (GLogLevelFlags   level,
                 const GLogField *fields,
                 gsize            n_fields,
                 gpointer         user_data)
{
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
    {
      for (gsize i = 0; i < n_fields; i++)
        if (strcmp (fields[i].key, "MESSAGE") == 0)
          fprintf (stderr, "fuzz: fatal log message: %s\n", (const char *) fields[i].value);
      abort ();
    }
  return G_LOG_WRITER_HANDLED;
}

static inline void
fuzz_init_logging (void)
{
  g_log_set_writer_func (fuzz_log_writer, NULL, NULL);
}

/* Up to @max fields of @data cut at '\n', each a NUL-terminated copy (a NUL inside a field
 * ends its C string, as it would after any HTTP parser). The last field takes the rest. */
typedef struct {
  char  *field[16];
  guint  n;
} FuzzFields;

static inline void
fuzz_fields_split (FuzzFields    *f,
                   const uint8_t *data,
                   size_t         size,
                   guint          max)
{
  size_t start = 0;

  g_assert (max > 0 && max <= G_N_ELEMENTS (f->field));
  f->n = 0;
  while (f->n < max - 1)
    {
      const uint8_t *nl = memchr (data + start, '\n', size - start);

      if (nl == NULL)
        break;
      f->field[f->n++] = g_strndup ((const char *) data + start, nl - (data + start));
      start = nl - data + 1;
    }
  f->field[f->n++] = g_strndup ((const char *) data + start, size - start);
  for (guint i = f->n; i < G_N_ELEMENTS (f->field); i++)
    f->field[i] = NULL;
}

/* The field, or "" past the end. */
static inline const char *
fuzz_field (const FuzzFields *f,
            guint             i)
{
  return i < f->n ? f->field[i] : "";
}

static inline void
fuzz_fields_clear (FuzzFields *f)
{
  for (guint i = 0; i < f->n; i++)
    g_free (f->field[i]);
  f->n = 0;
}

/* Stops the run with what went wrong: for properties that must hold on every input. */
#define fuzz_check(cond, ...) \
  G_STMT_START { \
    if (!(cond)) \
      { \
        fprintf (stderr, "fuzz: check failed: %s: ", #cond); \
        fprintf (stderr, __VA_ARGS__); \
        fputc ('\n', stderr); \
        abort (); \
      } \
  } G_STMT_END
