/* mp-test-util.h - helpers the test suites share: real magpied processes on loopback */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct {
  GSubprocess *process;
  char        *url;
  char        *data_dir;
  char        *log_path;
  gboolean     own_data_dir;
} MpTestServer;

const char   *mp_test_magpied_path     (void);
char         *mp_test_make_tmpdir      (const char    *prefix);
void          mp_test_rm_rf            (const char    *path);
MpTestServer *mp_test_server_start     (const char    *data_dir,
                                        const char   **extra_args,
                                        GError       **error);
int           mp_test_server_stop      (MpTestServer  *server,
                                        int            signum,
                                        gint64        *elapsed_us);
void          mp_test_server_free      (MpTestServer  *server);
char         *mp_test_server_log       (MpTestServer  *server);
JsonNode     *mp_test_http_json        (SoupSession   *session,
                                        const char    *method,
                                        const char    *url,
                                        const char    *body,
                                        guint         *status);
char         *mp_test_http_text        (SoupSession   *session,
                                        const char    *method,
                                        const char    *url,
                                        guint         *status);
char         *mp_test_shared_data      (const char    *relative);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MpTestServer, mp_test_server_free)

G_END_DECLS
