/* magpie-preferences-window.h - Preferences: the server address */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define MAGPIE_TYPE_PREFERENCES_WINDOW (magpie_preferences_window_get_type ())

G_DECLARE_FINAL_TYPE (MagpiePreferencesWindow, magpie_preferences_window,
                      MAGPIE, PREFERENCES_WINDOW, AdwPreferencesWindow)

MagpiePreferencesWindow *magpie_preferences_window_new (GSettings *settings);

G_END_DECLS
