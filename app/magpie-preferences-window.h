/* magpie-preferences-window.h - Preferences: the server address, the account, the threshold */
#pragma once

#include <adwaita.h>

#include "magpie-identity.h"

G_BEGIN_DECLS

#define MAGPIE_TYPE_PREFERENCES_WINDOW (magpie_preferences_window_get_type ())

G_DECLARE_FINAL_TYPE (MagpiePreferencesWindow, magpie_preferences_window,
                      MAGPIE, PREFERENCES_WINDOW, AdwPreferencesWindow)

MagpiePreferencesWindow *magpie_preferences_window_new (GSettings      *settings,
                                                        MagpieIdentity *identity);
void magpie_preferences_window_get_account_widgets (MagpiePreferencesWindow  *self,
                                                    GtkEditable             **username,
                                                    GtkEditable             **password,
                                                    GtkButton               **sign_in,
                                                    GtkButton               **create_account,
                                                    GtkButton               **sign_out);

G_END_DECLS
