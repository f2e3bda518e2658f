/* app-test-util.h - what the app tests share: the real application, waiting on the main loop */
#pragma once

#include "magpie-application.h"
#include "magpie-credentials.h"
#include "magpie-window.h"
#include "mp-test-util.h"

G_BEGIN_DECLS

typedef gboolean (*AppTestCondition) (gpointer user_data);

/* A magpied for one test, also stopped (and its data removed) when an assertion fails. */
typedef MpTestServer AppTestServer;

MagpieApplication *app_test_application_new (void);
char              *app_test_isolate_dirs    (void);
void               app_test_screenshot      (const char       *dir,
                                             const char       *name);
gboolean           app_test_wait            (AppTestCondition  condition,
                                             gpointer          user_data,
                                             guint             timeout_ms);
GtkWindow         *app_test_find_window     (GType             type);
void               app_test_close_all       (void);
AppTestServer     *app_test_server_start    (void);
void               app_test_server_stop     (AppTestServer    *server);
void               app_test_server_free     (AppTestServer    *server);
GPtrArray         *app_test_shared_photos   (void);
void               app_test_drop_files      (MagpieWindow     *window,
                                             GFile           **files,
                                             guint             n_files);
gboolean           app_test_imports_done    (gpointer          gallery_page);
void               app_test_collect_widgets (GtkWidget        *root,
                                             GType             type,
                                             GPtrArray        *found);
MagpieS3Credentials *app_test_credentials   (MagpieApplication *app,
                                             const char       *url);
guint              app_test_catalog_count   (const char       *url,
                                             const char       *token);
/* AppTestConditions over a library (a GListModel of MagpiePhoto), true when it is not empty
 * and every photo is: tagged with the server's tags; tagged by the server, with its tags if it
 * found any; on the server (being tagged or tagged). */
gboolean           app_test_all_server_tagged (gpointer         library);
gboolean           app_test_all_server_done   (gpointer         library);
gboolean           app_test_all_uploaded      (gpointer         library);
void               app_test_dump_states       (GListModel      *library);
guint              app_test_files_containing  (const char      *dir,
                                               const char      *needle);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AppTestServer, app_test_server_free)

G_END_DECLS
