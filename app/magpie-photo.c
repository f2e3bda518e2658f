/* magpie-photo.c - one photo in the library: its stored file, upload state, tags, thumbnail
 *
 * A photo is the library's in-memory view of one row of the store. Tags come from two places:
 * the bundled model on this device and the server. The server's are better, so once it has
 * answered, local tags never replace them again.
 */
#define G_LOG_DOMAIN "magpie-photo"

#include "config.h"

#include "magpie-photo.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>

#include "mp-image.h"
#include "nn-labels.h"

/* Large enough for a 200 px tile on a 2x display without a visible blur. */
#define MAGPIE_THUMBNAIL_SIZE 320

struct _MagpiePhoto {
  GObject           parent_instance;

  gint64            id;
  GFile            *file;
  char             *sha256;
  char             *name;
  char             *extension;
  goffset           size;
  int               width;
  int               height;
  GDateTime        *imported;
  MagpiePhotoState  state;
  double            progress;
  char             *failure_reason;
  GPtrArray        *tags;
  GdkTexture       *thumbnail;
  guint             thumbnail_loading : 1;
  guint             thumbnail_failed : 1;
};

G_DEFINE_FINAL_TYPE (MagpiePhoto, magpie_photo, G_TYPE_OBJECT)

G_DEFINE_BOXED_TYPE (MagpieTag, magpie_tag, magpie_tag_copy, magpie_tag_free)

enum {
  PROP_0,
  PROP_ID,
  PROP_FILE,
  PROP_SHA256,
  PROP_NAME,
  PROP_STATE,
  PROP_PROGRESS,
  PROP_FAILURE_REASON,
  PROP_TAGS,
  PROP_THUMBNAIL,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

MagpieTag *
magpie_tag_new (const char      *label,
                double           confidence,
                MagpieTagSource  source)
{
  MagpieTag *tag = g_new0 (MagpieTag, 1);

  g_return_val_if_fail (label != NULL, NULL);

  tag->label = g_strdup (label);
  tag->confidence = confidence;
  tag->source = source;
  return tag;
}

MagpieTag *
magpie_tag_copy (const MagpieTag *tag)
{
  return magpie_tag_new (tag->label, tag->confidence, tag->source);
}

void
magpie_tag_free (MagpieTag *tag)
{
  if (tag == NULL)
    return;
  g_free (tag->label);
  g_free (tag);
}

static void
magpie_photo_finalize (GObject *object)
{
  MagpiePhoto *self = MAGPIE_PHOTO (object);

  g_clear_object (&self->file);
  g_clear_object (&self->thumbnail);
  g_clear_pointer (&self->imported, g_date_time_unref);
  g_clear_pointer (&self->tags, g_ptr_array_unref);
  g_free (self->sha256);
  g_free (self->name);
  g_free (self->extension);
  g_free (self->failure_reason);

  G_OBJECT_CLASS (magpie_photo_parent_class)->finalize (object);
}

static void
magpie_photo_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  MagpiePhoto *self = MAGPIE_PHOTO (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_int64 (value, self->id);
      break;
    case PROP_FILE:
      g_value_set_object (value, self->file);
      break;
    case PROP_SHA256:
      g_value_set_string (value, self->sha256);
      break;
    case PROP_NAME:
      g_value_set_string (value, self->name);
      break;
    case PROP_STATE:
      g_value_set_int (value, self->state);
      break;
    case PROP_PROGRESS:
      g_value_set_double (value, self->progress);
      break;
    case PROP_FAILURE_REASON:
      g_value_set_string (value, self->failure_reason);
      break;
    case PROP_TAGS:
      g_value_set_boxed (value, self->tags);
      break;
    case PROP_THUMBNAIL:
      g_value_set_object (value, self->thumbnail);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_photo_class_init (MagpiePhotoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = magpie_photo_finalize;
  object_class->get_property = magpie_photo_get_property;

  properties[PROP_ID] =
    g_param_spec_int64 ("id", NULL, NULL, 0, G_MAXINT64, 0,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_FILE] =
    g_param_spec_object ("file", NULL, NULL, G_TYPE_FILE,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_SHA256] =
    g_param_spec_string ("sha256", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_STATE] =
    g_param_spec_int ("state", NULL, NULL,
                      MAGPIE_PHOTO_STATE_WAITING, MAGPIE_PHOTO_STATE_FAILED,
                      MAGPIE_PHOTO_STATE_WAITING,
                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_PROGRESS] =
    g_param_spec_double ("progress", NULL, NULL, 0.0, 1.0, 0.0,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_FAILURE_REASON] =
    g_param_spec_string ("failure-reason", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_TAGS] =
    g_param_spec_boxed ("tags", NULL, NULL, G_TYPE_PTR_ARRAY,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_THUMBNAIL] =
    g_param_spec_object ("thumbnail", NULL, NULL, GDK_TYPE_TEXTURE,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
magpie_photo_init (MagpiePhoto *self)
{
  self->tags = g_ptr_array_new_with_free_func ((GDestroyNotify) magpie_tag_free);
}

/* @file is the library's own copy of the photo, named by @sha256; @name is the file name it
 * was imported under, for people. */
MagpiePhoto *
magpie_photo_new (gint64      id,
                  GFile      *file,
                  const char *sha256,
                  const char *name)
{
  MagpiePhoto *self;
  g_autofree char *basename = NULL;
  const char *dot;

  g_return_val_if_fail (G_IS_FILE (file), NULL);
  g_return_val_if_fail (sha256 != NULL, NULL);

  self = g_object_new (MAGPIE_TYPE_PHOTO, NULL);
  self->id = id;
  self->file = g_object_ref (file);
  self->sha256 = g_strdup (sha256);
  self->name = g_strdup (name != NULL ? name : sha256);
  basename = g_file_get_basename (file);
  dot = strrchr (basename, '.');
  self->extension = g_strdup (dot != NULL ? dot + 1 : "");
  return self;
}

gint64
magpie_photo_get_id (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), 0);
  return self->id;
}

GFile *
magpie_photo_get_file (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), NULL);
  return self->file;
}

const char *
magpie_photo_get_sha256 (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), NULL);
  return self->sha256;
}

const char *
magpie_photo_get_name (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), NULL);
  return self->name;
}

const char *
magpie_photo_get_extension (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), NULL);
  return self->extension;
}

goffset
magpie_photo_get_size (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), 0);
  return self->size;
}

void
magpie_photo_set_size (MagpiePhoto *self,
                       goffset      size)
{
  g_return_if_fail (MAGPIE_IS_PHOTO (self));
  self->size = size;
}

void
magpie_photo_get_dimensions (MagpiePhoto *self,
                             int         *width,
                             int         *height)
{
  g_return_if_fail (MAGPIE_IS_PHOTO (self));
  if (width != NULL)
    *width = self->width;
  if (height != NULL)
    *height = self->height;
}

void
magpie_photo_set_dimensions (MagpiePhoto *self,
                             int          width,
                             int          height)
{
  g_return_if_fail (MAGPIE_IS_PHOTO (self));
  self->width = width;
  self->height = height;
}

GDateTime *
magpie_photo_get_imported (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), NULL);
  return self->imported;
}

void
magpie_photo_set_imported (MagpiePhoto *self,
                           GDateTime   *imported)
{
  g_return_if_fail (MAGPIE_IS_PHOTO (self));
  g_clear_pointer (&self->imported, g_date_time_unref);
  if (imported != NULL)
    self->imported = g_date_time_ref (imported);
}

MagpiePhotoState
magpie_photo_get_state (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), MAGPIE_PHOTO_STATE_WAITING);
  return self->state;
}

void
magpie_photo_set_state (MagpiePhoto      *self,
                        MagpiePhotoState  state)
{
  g_return_if_fail (MAGPIE_IS_PHOTO (self));

  if (state != MAGPIE_PHOTO_STATE_FAILED && self->failure_reason != NULL)
    {
      g_clear_pointer (&self->failure_reason, g_free);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FAILURE_REASON]);
    }
  if (self->state == state)
    return;
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

double
magpie_photo_get_progress (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), 0.0);
  return self->progress;
}

/* The upload's progress, 0 to 1; meaningful while the state is uploading. */
void
magpie_photo_set_progress (MagpiePhoto *self,
                           double       progress)
{
  g_return_if_fail (MAGPIE_IS_PHOTO (self));

  progress = CLAMP (progress, 0.0, 1.0);
  if (self->progress == progress)
    return;
  self->progress = progress;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PROGRESS]);
}

const char *
magpie_photo_get_failure_reason (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), NULL);
  return self->failure_reason;
}

/* Marks the photo failed; @reason is for people, in plain words. */
void
magpie_photo_set_failed (MagpiePhoto *self,
                         const char  *reason)
{
  g_return_if_fail (MAGPIE_IS_PHOTO (self));
  g_return_if_fail (reason != NULL);

  if (g_strcmp0 (self->failure_reason, reason) != 0)
    {
      g_free (self->failure_reason);
      self->failure_reason = g_strdup (reason);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FAILURE_REASON]);
    }
  magpie_photo_set_state (self, MAGPIE_PHOTO_STATE_FAILED);
}

/* The tags, best first: an array of MagpieTag owned by the photo. */
GPtrArray *
magpie_photo_get_tags (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), NULL);
  return self->tags;
}

static int
compare_tags (gconstpointer a,
              gconstpointer b)
{
  const MagpieTag *ta = *(const MagpieTag * const *) a;
  const MagpieTag *tb = *(const MagpieTag * const *) b;

  return (ta->confidence < tb->confidence) - (ta->confidence > tb->confidence);
}

/* Replaces the tags with @tags (MagpieTag, copied) from @source. Local tags do not replace the
 * server's: returns FALSE and changes nothing then. */
gboolean
magpie_photo_set_tags (MagpiePhoto     *self,
                       GPtrArray       *tags,
                       MagpieTagSource  source)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), FALSE);
  g_return_val_if_fail (tags != NULL, FALSE);

  if (source == MAGPIE_TAG_SOURCE_LOCAL && self->tags->len > 0 &&
      ((MagpieTag *) self->tags->pdata[0])->source == MAGPIE_TAG_SOURCE_SERVER)
    return FALSE;

  g_ptr_array_set_size (self->tags, 0);
  for (guint i = 0; i < tags->len; i++)
    {
      const MagpieTag *tag = tags->pdata[i];

      g_ptr_array_add (self->tags, magpie_tag_new (tag->label, tag->confidence, source));
    }
  g_ptr_array_sort (self->tags, compare_tags);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TAGS]);
  return TRUE;
}

/* Whether a word of @label starts with @folded (casefolded). */
static gboolean
label_matches (const char *label,
               const char *folded)
{
  g_autofree char *casefolded = g_utf8_casefold (label, -1);

  for (const char *p = casefolded; p != NULL; p = strchr (p, ' '))
    {
      while (*p == ' ')
        p++;
      if (g_str_has_prefix (p, folded))
        return TRUE;
    }
  return FALSE;
}

/* Whether a tag with at least @threshold confidence starts with @query (case-insensitive,
 * by word, in English or the user's language), or the file name contains it. An empty query
 * matches everything. */
gboolean
magpie_photo_matches (MagpiePhoto *self,
                      const char  *query,
                      double       threshold)
{
  g_autofree char *folded = NULL;
  g_autofree char *name = NULL;

  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), FALSE);

  if (query == NULL || *query == '\0')
    return TRUE;

  folded = g_utf8_casefold (query, -1);
  for (guint i = 0; i < self->tags->len; i++)
    {
      const MagpieTag *tag = self->tags->pdata[i];

      if (tag->confidence < threshold)
        continue;
      /* as shown ("Katze") and as stored ("cat"): both find the photo */
      if (label_matches (nn_label_display_name (tag->label), folded) ||
          label_matches (tag->label, folded))
        return TRUE;
    }

  name = g_utf8_casefold (self->name, -1);
  return strstr (name, folded) != NULL;
}

/* The state in words for a tile: "Waiting", "Uploading 40 %", "Failed: <reason>"… */
char *
magpie_photo_describe_state (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), NULL);

  switch (self->state)
    {
    case MAGPIE_PHOTO_STATE_WAITING:
      return g_strdup (_("Waiting to upload"));
    case MAGPIE_PHOTO_STATE_UPLOADING:
      /* Translators: %d is a percentage; “%%” is the percent sign */
      return g_strdup_printf (_("Uploading %d %%"), (int) (self->progress * 100.0 + 0.5));
    case MAGPIE_PHOTO_STATE_TAGGING:
      return g_strdup (_("Tagging"));
    case MAGPIE_PHOTO_STATE_TAGGED:
      return g_strdup (_("Tagged"));
    case MAGPIE_PHOTO_STATE_FAILED:
    default:
      /* Translators: %s says why, in plain words */
      return g_strdup_printf (_("Failed: %s"),
                              self->failure_reason != NULL ? self->failure_reason : "");
    }
}

GdkTexture *
magpie_photo_get_thumbnail (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), NULL);
  return self->thumbnail;
}

/* TRUE once making the thumbnail failed (the reason went to the log): the photo shows none. */
gboolean
magpie_photo_get_thumbnail_failed (MagpiePhoto *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO (self), FALSE);
  return self->thumbnail_failed;
}

typedef struct {
  char *path;
  char *cache_path;
} ThumbnailJob;

static void
thumbnail_job_free (ThumbnailJob *job)
{
  g_free (job->path);
  g_free (job->cache_path);
  g_free (job);
}

/* Thread: the cached thumbnail, or a new one decoded at its small size (JPEG decodes at 1/2,
 * 1/4, 1/8 scale directly), turned upright and written back to the cache. The photo is
 * decoded as the server decodes it (mp-image.h): the six photo formats only, within the
 * pixel limit, a truncated file refused rather than shown with grey rows. */
static void
thumbnail_thread (GTask        *task,
                  gpointer      source_object,
                  gpointer      task_data,
                  GCancellable *cancellable)
{
  ThumbnailJob *job = task_data;
  g_autoptr(GdkPixbuf) pixbuf = NULL;
  g_autoptr(GdkPixbuf) upright = NULL;
  g_autoptr(MpImage) image = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *png = NULL;
  gsize png_size = 0;
  MpImageLimits limits;
  int w, h;
  double f;

  if (job->cache_path != NULL)
    pixbuf = gdk_pixbuf_new_from_file (job->cache_path, NULL);
  if (pixbuf != NULL)
    {
      g_task_return_pointer (task, g_steal_pointer (&pixbuf), g_object_unref);
      return;
    }

  mp_image_limits_init (&limits);
  /* A local file, mapped: its pixels are what costs memory, and those are bounded. */
  limits.max_bytes = G_MAXSIZE;
  limits.work_side = MAGPIE_THUMBNAIL_SIZE;
  image = mp_image_load_file (job->path, &limits, &error);
  if (image == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  /* Upright already, the shorter side at most the thumbnail's: now the longer one too. */
  w = gdk_pixbuf_get_width (image->pixbuf);
  h = gdk_pixbuf_get_height (image->pixbuf);
  f = MIN (1.0, (double) MAGPIE_THUMBNAIL_SIZE / MAX (w, h));
  upright = f < 1.0 ? gdk_pixbuf_scale_simple (image->pixbuf, MAX (1, (int) (w * f + 0.5)),
                                               MAX (1, (int) (h * f + 0.5)), GDK_INTERP_BILINEAR)
                    : g_object_ref (image->pixbuf);

  if (job->cache_path != NULL)
    {
      g_autofree char *dir = g_path_get_dirname (job->cache_path);

      if (g_mkdir_with_parents (dir, 0700) == 0 &&
          gdk_pixbuf_save_to_buffer (upright, &png, &png_size, "png", &error, NULL))
        g_file_set_contents (job->cache_path, png, png_size, &error);
      if (error != NULL)
        g_debug ("Not caching the thumbnail %s: %s", job->cache_path, error->message);
    }

  g_task_return_pointer (task, g_steal_pointer (&upright), g_object_unref);
}

static void
thumbnail_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  MagpiePhoto *self = MAGPIE_PHOTO (object);
  g_autoptr(GdkPixbuf) pixbuf = NULL;
  g_autoptr(GError) error = NULL;

  self->thumbnail_loading = FALSE;
  pixbuf = g_task_propagate_pointer (G_TASK (result), &error);
  if (pixbuf == NULL)
    {
      g_warning ("Cannot make a thumbnail of %s: %s", self->name, error->message);
      self->thumbnail_failed = TRUE;
      return;
    }

  g_set_object (&self->thumbnail, NULL);
  self->thumbnail = gdk_texture_new_for_pixbuf (pixbuf);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_THUMBNAIL]);
}

/* Starts making the thumbnail unless it is there or on its way; the thumbnail property
 * changes when it is ready. Thumbnails are cached in @cache_dir (may be NULL) by hash. */
void
magpie_photo_ensure_thumbnail (MagpiePhoto *self,
                               const char  *cache_dir)
{
  g_autoptr(GTask) task = NULL;
  ThumbnailJob *job;

  g_return_if_fail (MAGPIE_IS_PHOTO (self));

  if (self->thumbnail != NULL || self->thumbnail_loading || self->thumbnail_failed)
    return;

  job = g_new0 (ThumbnailJob, 1);
  job->path = g_file_get_path (self->file);
  if (cache_dir != NULL)
    {
      g_autofree char *name = g_strdup_printf ("%s-%d.png", self->sha256, MAGPIE_THUMBNAIL_SIZE);

      job->cache_path = g_build_filename (cache_dir, name, NULL);
    }

  self->thumbnail_loading = TRUE;
  task = g_task_new (self, NULL, thumbnail_cb, NULL);
  g_task_set_source_tag (task, magpie_photo_ensure_thumbnail);
  g_task_set_task_data (task, job, (GDestroyNotify) thumbnail_job_free);
  g_task_run_in_thread (task, thumbnail_thread);
}
