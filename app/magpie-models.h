/* magpie-models.h - the offline photo model: the bundled one, or a newer one from the server */
#pragma once

#include "magpie-connection.h"
#include "magpie-credentials.h"
#include "magpie-library.h"

G_BEGIN_DECLS

/* While online, the server's listing is looked at on every (re)connection and this often. */
#define MAGPIE_MODELS_REFRESH_INTERVAL_S (6 * 60 * 60)
/* A model larger than this is not one Magpie downloads (the bundled one is 4 MB). */
#define MAGPIE_MODELS_MAX_BYTES (512 * 1024 * 1024)

#define MAGPIE_TYPE_MODELS (magpie_models_get_type ())

G_DECLARE_FINAL_TYPE (MagpieModels, magpie_models, MAGPIE, MODELS, GObject)

MagpieModels *magpie_models_new                (SoupSession          *session,
                                                MagpieConnection     *connection,
                                                MagpieCredentials    *credentials,
                                                MagpieLibrary        *library,
                                                const char           *data_dir,
                                                const char           *bundled);
const char   *magpie_models_get_photo_model    (MagpieModels         *self);
const char   *magpie_models_get_bundled        (MagpieModels         *self);
guint         magpie_models_get_n_downloads    (MagpieModels         *self);
void          magpie_models_refresh_async      (MagpieModels         *self,
                                                GCancellable         *cancellable,
                                                GAsyncReadyCallback   callback,
                                                gpointer              user_data);
gboolean      magpie_models_refresh_finish     (MagpieModels         *self,
                                                GAsyncResult         *result,
                                                GError              **error);

G_END_DECLS
