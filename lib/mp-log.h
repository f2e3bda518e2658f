/* mp-log.h - structured log lines (logfmt) for magpied and the tools */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  MP_LOG_FORMAT_LOGFMT,
  MP_LOG_FORMAT_JSON,
} MpLogFormat;

void   mp_log_init         (const char      *program,
                            MpLogFormat      format);
char  *mp_log_format_line  (MpLogFormat      format,
                            const char      *program,
                            gint64           unix_usec,
                            GLogLevelFlags   level,
                            const GLogField *fields,
                            gsize            n_fields);
gboolean mp_log_format_parse (const char    *text,
                              MpLogFormat   *format);

G_END_DECLS
