/* app-test-util.h - what the app tests share: the real application, waiting on the main loop */
#pragma once

#include "magpie-application.h"
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

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AppTestServer, app_test_server_free)

G_END_DECLS
