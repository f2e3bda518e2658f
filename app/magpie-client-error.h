/* magpie-client-error.h - the app's error domain */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MAGPIE_CLIENT_ERROR (magpie_client_error_quark ())

typedef enum {
  MAGPIE_CLIENT_ERROR_INVALID_URL,
  MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
} MagpieClientError;

GQuark magpie_client_error_quark (void);

G_END_DECLS
