/* magpie-library.h - every photo Magpie has, as a list model, kept on disk */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "magpie-outbox.h"
#include "magpie-photo.h"
#include "magpie-tagger.h"

G_BEGIN_DECLS

/* What one import did, for the toast that reports it. */
typedef struct {
  guint      n_added;
  guint      n_duplicates;
  GPtrArray *refused; /* display names of files that are not images */
  GPtrArray *failed;  /* "name: reason" for files that could not be imported */
} MagpieImportResult;

void magpie_import_result_free (MagpieImportResult *result);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MagpieImportResult, magpie_import_result_free)

#define MAGPIE_TYPE_LIBRARY (magpie_library_get_type ())

G_DECLARE_FINAL_TYPE (MagpieLibrary, magpie_library, MAGPIE, LIBRARY, GObject)

MagpieLibrary      *magpie_library_new               (const char          *data_dir,
                                                      const char          *cache_dir);
MagpieOutbox       *magpie_library_get_outbox        (MagpieLibrary       *self);
const char         *magpie_library_get_thumbnail_dir (MagpieLibrary       *self);
void                magpie_library_sync              (MagpieLibrary       *self);
guint               magpie_library_get_n_pending     (MagpieLibrary       *self);
gboolean            magpie_library_get_loaded        (MagpieLibrary       *self);
MagpieTagger       *magpie_library_get_tagger        (MagpieLibrary       *self);
void                magpie_library_set_tagger        (MagpieLibrary       *self,
                                                      MagpieTagger        *tagger);
void                magpie_library_load_async        (MagpieLibrary       *self,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
gboolean            magpie_library_load_finish       (MagpieLibrary       *self,
                                                      GAsyncResult        *result,
                                                      GError             **error);
MagpiePhoto        *magpie_library_find              (MagpieLibrary       *self,
                                                      gint64               id);
void                magpie_library_import_async      (MagpieLibrary       *self,
                                                      GFile              **files,
                                                      guint                n_files,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
MagpieImportResult *magpie_library_import_finish     (MagpieLibrary       *self,
                                                      GAsyncResult        *result,
                                                      GError             **error);
void                magpie_library_remove            (MagpieLibrary       *self,
                                                      MagpiePhoto         *photo);
void                magpie_library_restore           (MagpieLibrary       *self,
                                                      MagpiePhoto         *photo);
void                magpie_library_purge             (MagpieLibrary       *self,
                                                      MagpiePhoto         *photo);
void                magpie_library_set_tags          (MagpieLibrary       *self,
                                                      MagpiePhoto         *photo,
                                                      GPtrArray           *tags,
                                                      MagpieTagSource      source);
MagpiePhoto        *magpie_library_find_by_sha256    (MagpieLibrary       *self,
                                                      const char          *sha256);
gboolean            magpie_library_apply_server_photo (MagpieLibrary      *self,
                                                       JsonNode           *node);

G_END_DECLS
