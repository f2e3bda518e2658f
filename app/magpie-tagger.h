/* magpie-tagger.h - tags photos on this device with the bundled photo model */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Tags below this confidence are not worth showing at all. */
#define MAGPIE_TAGGER_MIN_CONFIDENCE 0.05
#define MAGPIE_TAGGER_TOP_K 5

#define MAGPIE_TYPE_TAGGER (magpie_tagger_get_type ())

G_DECLARE_FINAL_TYPE (MagpieTagger, magpie_tagger, MAGPIE, TAGGER, GObject)

char         *magpie_tagger_find_model   (const char          *configured,
                                          const char          *name);
MagpieTagger *magpie_tagger_new          (const char          *model_path);
const char   *magpie_tagger_get_model    (MagpieTagger        *self);
void          magpie_tagger_set_fallback (MagpieTagger        *self,
                                          const char          *fallback);
void          magpie_tagger_tag_async    (MagpieTagger        *self,
                                          GFile               *file,
                                          GCancellable        *cancellable,
                                          GAsyncReadyCallback  callback,
                                          gpointer             user_data);
GPtrArray    *magpie_tagger_tag_finish   (MagpieTagger        *self,
                                          GAsyncResult        *result,
                                          GError             **error);

void magpie_tagger_close (MagpieTagger *self);

G_END_DECLS
