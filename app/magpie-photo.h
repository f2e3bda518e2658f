/* magpie-photo.h - one photo in the library: its stored file, upload state, tags, thumbnail */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

typedef enum {
  MAGPIE_PHOTO_STATE_WAITING,
  MAGPIE_PHOTO_STATE_UPLOADING,
  MAGPIE_PHOTO_STATE_TAGGING,
  MAGPIE_PHOTO_STATE_TAGGED,
  MAGPIE_PHOTO_STATE_FAILED,
} MagpiePhotoState;

typedef enum {
  MAGPIE_TAG_SOURCE_LOCAL,
  MAGPIE_TAG_SOURCE_SERVER,
} MagpieTagSource;

#define MAGPIE_TYPE_TAG (magpie_tag_get_type ())

typedef struct {
  char            *label;
  double           confidence;
  MagpieTagSource  source;
} MagpieTag;

GType      magpie_tag_get_type (void) G_GNUC_CONST;
MagpieTag *magpie_tag_new      (const char      *label,
                                double           confidence,
                                MagpieTagSource  source);
MagpieTag *magpie_tag_copy     (const MagpieTag *tag);
void       magpie_tag_free     (MagpieTag       *tag);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MagpieTag, magpie_tag_free)

#define MAGPIE_TYPE_PHOTO (magpie_photo_get_type ())

G_DECLARE_FINAL_TYPE (MagpiePhoto, magpie_photo, MAGPIE, PHOTO, GObject)

MagpiePhoto      *magpie_photo_new                (gint64            id,
                                                   GFile            *file,
                                                   const char       *sha256,
                                                   const char       *name);
gint64            magpie_photo_get_id             (MagpiePhoto      *self);
GFile            *magpie_photo_get_file           (MagpiePhoto      *self);
const char       *magpie_photo_get_sha256         (MagpiePhoto      *self);
const char       *magpie_photo_get_name           (MagpiePhoto      *self);
const char       *magpie_photo_get_extension      (MagpiePhoto      *self);
goffset           magpie_photo_get_size           (MagpiePhoto      *self);
void              magpie_photo_set_size           (MagpiePhoto      *self,
                                                   goffset           size);
void              magpie_photo_get_dimensions     (MagpiePhoto      *self,
                                                   int              *width,
                                                   int              *height);
void              magpie_photo_set_dimensions     (MagpiePhoto      *self,
                                                   int               width,
                                                   int               height);
GDateTime        *magpie_photo_get_imported       (MagpiePhoto      *self);
void              magpie_photo_set_imported       (MagpiePhoto      *self,
                                                   GDateTime        *imported);
MagpiePhotoState  magpie_photo_get_state          (MagpiePhoto      *self);
void              magpie_photo_set_state          (MagpiePhoto      *self,
                                                   MagpiePhotoState  state);
double            magpie_photo_get_progress       (MagpiePhoto      *self);
void              magpie_photo_set_progress       (MagpiePhoto      *self,
                                                   double            progress);
const char       *magpie_photo_get_failure_reason (MagpiePhoto      *self);
void              magpie_photo_set_failed         (MagpiePhoto      *self,
                                                   const char       *reason);
GPtrArray        *magpie_photo_get_tags           (MagpiePhoto      *self);
gboolean          magpie_photo_set_tags           (MagpiePhoto      *self,
                                                   GPtrArray        *tags,
                                                   MagpieTagSource   source);
gboolean          magpie_photo_matches            (MagpiePhoto      *self,
                                                   const char       *query,
                                                   double            threshold);
char             *magpie_photo_describe_state     (MagpiePhoto      *self);
GdkTexture       *magpie_photo_get_thumbnail      (MagpiePhoto      *self);
void              magpie_photo_ensure_thumbnail   (MagpiePhoto      *self,
                                                   const char       *cache_dir);
gboolean          magpie_photo_get_thumbnail_failed (MagpiePhoto    *self);

G_END_DECLS
