/* magpie-client-error.c - the app's error domain */
#include "config.h"

#include "magpie-client-error.h"

G_DEFINE_QUARK (magpie-client-error-quark, magpie_client_error)
