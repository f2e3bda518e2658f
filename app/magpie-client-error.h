/* magpie-client-error.h - the app's error domain */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MAGPIE_CLIENT_ERROR (magpie_client_error_quark ())

typedef enum {
  MAGPIE_CLIENT_ERROR_INVALID_URL,
  MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
  MAGPIE_CLIENT_ERROR_STORAGE,      /* the library database or its files */
  MAGPIE_CLIENT_ERROR_NOT_AN_IMAGE, /* an imported file no image loader can read */
  MAGPIE_CLIENT_ERROR_NO_MODEL,     /* a bundled model is missing or unusable */
  MAGPIE_CLIENT_ERROR_REFUSED,      /* the server said no: wrong password, name taken, … */
} MagpieClientError;

GQuark magpie_client_error_quark (void);

G_END_DECLS
