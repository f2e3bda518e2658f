/* app-test-util.h - what the app tests share: the real application, waiting on the main loop */
#pragma once

#include "magpie-application.h"

G_BEGIN_DECLS

typedef gboolean (*AppTestCondition) (gpointer user_data);

MagpieApplication *app_test_application_new (void);
gboolean           app_test_wait            (AppTestCondition  condition,
                                             gpointer          user_data,
                                             guint             timeout_ms);
GtkWindow         *app_test_find_window     (GType             type);
void               app_test_close_all       (void);

G_END_DECLS
