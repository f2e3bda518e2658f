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
  char        *database;      /* its catalog location, mp_test_db_location() */
  char        *log_path;
  gboolean     own_data_dir;
} MpTestServer;

const char   *mp_test_magpied_path     (void);
/* How much to stretch a test's time bound: MAGPIE_TEST_SLOWDOWN (set by the asan and valgrind
 * setups, or by hand on a loaded machine), at least 1. Bounds guard the design (no hang, an
 * index and not a scan); the benchmarks give the figures. */
double        mp_test_slowdown         (void);
/* The backend under test: MAGPIE_TEST_DB (set by tests/with-postgres.sh) names a PostgreSQL
 * server, else the catalog is SQLite in the data dir. */
gboolean      mp_test_db_is_postgresql (void);
/* The catalog location a magpied with --data-dir @data_dir uses in this run: the SQLite file
 * in it, or a PostgreSQL database of its own (created on first use, named after @data_dir). */
char         *mp_test_db_location      (const char    *data_dir);
char         *mp_test_make_tmpdir      (const char    *prefix);
void          mp_test_rm_rf            (const char    *path);
MpTestServer *mp_test_server_start     (const char    *data_dir,
                                        const char   **extra_args,
                                        GError       **error);
gboolean      mp_test_server_restart   (MpTestServer  *server,
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
JsonNode     *mp_test_http_call        (SoupSession   *session,
                                        const char    *method,
                                        const char    *url,
                                        const char    *token,
                                        const char    *body,
                                        guint         *status,
                                        SoupMessageHeaders **response_headers);
char         *mp_test_http_text        (SoupSession   *session,
                                        const char    *method,
                                        const char    *url,
                                        guint         *status);
char         *mp_test_shared_data      (const char    *relative);
/* SqueezeNet from the shared data set up in @dir as a photo model: photos.onnx (a link) and a
 * Caffe-style photos.json sidecar (BGR, mean subtraction, 256 then crop 224, ImageNet labels).
 * Returns the .onnx path, or NULL when the shared data lacks the model or its labels. */
char         *mp_test_photo_model      (const char    *dir);
/* The value of one series (`name{labels}` as written) in a server's /metrics; -1 if absent. */
double        mp_test_metric           (SoupSession   *session,
                                        const char    *url,
                                        const char    *series);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MpTestServer, mp_test_server_free)

G_END_DECLS
