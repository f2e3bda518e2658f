/* magpie-library.c - every photo Magpie has, as a list model, kept on disk
 *
 * The list holds one MagpiePhoto per row of the store, newest first. Loading happens on the
 * store's thread after the window is up; until then the list is simply empty. Deleting is in
 * two steps so it can be undone: remove (gone from the list, marked in the store) and purge
 * (row and files gone). A mark left by a quit before the purge is finished at the next load.
 */
#define G_LOG_DOMAIN "magpie-library"

#include "config.h"

#include "magpie-library.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

#include "magpie-client-error.h"

/* Copies and hashes running at once for one import: enough to keep a disk busy, few enough
 * that a folder of thousands does not flood the thread pool. */
#define MAGPIE_LIBRARY_IMPORT_CONCURRENCY 4

struct _MagpieLibrary {
  GObject       parent_instance;

  char         *photos_dir;
  char         *thumbnail_dir;
  MagpieStore  *store;
  MagpieOutbox *outbox;
  MagpieTagger *tagger;
  GPtrArray    *photos;   /* MagpiePhoto, newest first */
  GPtrArray    *removed;  /* MagpiePhoto removed but not yet purged */
  gboolean      loaded;
  guint         n_pending; /* waiting or uploading */
};

static void magpie_library_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (MagpieLibrary, magpie_library, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL,
                                                      magpie_library_list_model_init))

enum {
  PROP_0,
  PROP_LOADED,
  PROP_N_ITEMS,
  PROP_N_PENDING,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

void
magpie_import_result_free (MagpieImportResult *result)
{
  if (result == NULL)
    return;
  g_ptr_array_unref (result->refused);
  g_ptr_array_unref (result->failed);
  g_free (result);
}

static GType
magpie_library_get_item_type (GListModel *model)
{
  return MAGPIE_TYPE_PHOTO;
}

static guint
magpie_library_get_n_items (GListModel *model)
{
  return MAGPIE_LIBRARY (model)->photos->len;
}

static gpointer
magpie_library_get_item (GListModel *model,
                         guint       position)
{
  MagpieLibrary *self = MAGPIE_LIBRARY (model);

  if (position >= self->photos->len)
    return NULL;
  return g_object_ref (self->photos->pdata[position]);
}

static void
magpie_library_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = magpie_library_get_item_type;
  iface->get_n_items = magpie_library_get_n_items;
  iface->get_item = magpie_library_get_item;
}

/* Photos not yet on the server: what the header's upload indicator counts. */
static void
update_pending (MagpieLibrary *self)
{
  guint n = 0;

  for (guint i = 0; i < self->photos->len; i++)
    {
      MagpiePhotoState state = magpie_photo_get_state (self->photos->pdata[i]);

      n += state == MAGPIE_PHOTO_STATE_WAITING || state == MAGPIE_PHOTO_STATE_UPLOADING;
    }
  if (n == self->n_pending)
    return;
  self->n_pending = n;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_PENDING]);
}

static void
items_changed (MagpieLibrary *self,
               guint          position,
               guint          removed,
               guint          added)
{
  g_list_model_items_changed (G_LIST_MODEL (self), position, removed, added);
  if (removed != added)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ITEMS]);
  update_pending (self);
}

static void
magpie_library_dispose (GObject *object)
{
  MagpieLibrary *self = MAGPIE_LIBRARY (object);

  g_clear_object (&self->tagger);
  g_clear_object (&self->outbox);
  g_clear_object (&self->store);
  if (self->photos != NULL)
    g_ptr_array_set_size (self->photos, 0);
  if (self->removed != NULL)
    g_ptr_array_set_size (self->removed, 0);

  G_OBJECT_CLASS (magpie_library_parent_class)->dispose (object);
}

static void
magpie_library_finalize (GObject *object)
{
  MagpieLibrary *self = MAGPIE_LIBRARY (object);

  g_ptr_array_unref (self->photos);
  g_ptr_array_unref (self->removed);
  g_free (self->photos_dir);
  g_free (self->thumbnail_dir);

  G_OBJECT_CLASS (magpie_library_parent_class)->finalize (object);
}

static void
magpie_library_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  MagpieLibrary *self = MAGPIE_LIBRARY (object);

  switch (prop_id)
    {
    case PROP_LOADED:
      g_value_set_boolean (value, self->loaded);
      break;
    case PROP_N_ITEMS:
      g_value_set_uint (value, self->photos->len);
      break;
    case PROP_N_PENDING:
      g_value_set_uint (value, self->n_pending);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_library_class_init (MagpieLibraryClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = magpie_library_dispose;
  object_class->finalize = magpie_library_finalize;
  object_class->get_property = magpie_library_get_property;

  properties[PROP_LOADED] =
    g_param_spec_boolean ("loaded", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_N_ITEMS] =
    g_param_spec_uint ("n-items", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  properties[PROP_N_PENDING] =
    g_param_spec_uint ("n-pending", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
magpie_library_init (MagpieLibrary *self)
{
  self->photos = g_ptr_array_new_with_free_func (g_object_unref);
  self->removed = g_ptr_array_new_with_free_func (g_object_unref);
}

static MagpiePhotoState
photo_state_for (const MagpieStoreRow *row)
{
  switch (row->upload)
    {
    case MAGPIE_UPLOAD_UPLOADING:
      return MAGPIE_PHOTO_STATE_UPLOADING;
    case MAGPIE_UPLOAD_UPLOADED:
      return (row->tags->len > 0 &&
              ((MagpieTag *) row->tags->pdata[0])->source == MAGPIE_TAG_SOURCE_SERVER)
             ? MAGPIE_PHOTO_STATE_TAGGED : MAGPIE_PHOTO_STATE_TAGGING;
    case MAGPIE_UPLOAD_FAILED:
      return MAGPIE_PHOTO_STATE_FAILED;
    case MAGPIE_UPLOAD_IMPORTING:
    case MAGPIE_UPLOAD_WAITING:
    default:
      return MAGPIE_PHOTO_STATE_WAITING;
    }
}

static void tag_locally (MagpieLibrary *self,
                         MagpiePhoto   *photo);

static MagpiePhoto *
photo_from_row (MagpieLibrary        *self,
                const MagpieStoreRow *row)
{
  g_autoptr(GFile) file = magpie_outbox_get_photo_file (self->outbox, row->sha256,
                                                        row->extension);
  g_autoptr(GDateTime) imported = g_date_time_new_from_unix_local (row->imported);
  MagpiePhoto *photo = magpie_photo_new (row->id, file, row->sha256, row->name);

  magpie_photo_set_size (photo, row->size);
  magpie_photo_set_dimensions (photo, row->width, row->height);
  magpie_photo_set_imported (photo, imported);
  if (row->tags->len > 0)
    magpie_photo_set_tags (photo, row->tags, ((MagpieTag *) row->tags->pdata[0])->source);
  if (row->upload == MAGPIE_UPLOAD_FAILED)
    magpie_photo_set_failed (photo, row->last_error != NULL ? row->last_error : "");
  else
    magpie_photo_set_state (photo, photo_state_for (row));
  return photo;
}

static void
outbox_entry_changed_cb (MagpieLibrary *self,
                         gint64         id,
                         int            upload,
                         double         progress,
                         const char    *error,
                         MagpieOutbox  *outbox)
{
  MagpiePhoto *photo = magpie_library_find (self, id);
  GPtrArray *tags;

  if (photo == NULL)
    return;

  switch (upload)
    {
    case MAGPIE_UPLOAD_UPLOADING:
      /* The server's answer (live) can overtake the outbox's last progress report. */
      if (magpie_photo_get_state (photo) == MAGPIE_PHOTO_STATE_TAGGED)
        break;
      magpie_photo_set_progress (photo, progress);
      magpie_photo_set_state (photo, MAGPIE_PHOTO_STATE_UPLOADING);
      break;
    case MAGPIE_UPLOAD_UPLOADED:
      /* Tagged already when the server's tags (possibly none) came before this note. */
      if (magpie_photo_get_state (photo) == MAGPIE_PHOTO_STATE_TAGGED)
        break;
      tags = magpie_photo_get_tags (photo);
      if (tags->len == 0 || ((MagpieTag *) tags->pdata[0])->source != MAGPIE_TAG_SOURCE_SERVER)
        magpie_photo_set_state (photo, MAGPIE_PHOTO_STATE_TAGGING);
      else
        magpie_photo_set_state (photo, MAGPIE_PHOTO_STATE_TAGGED);
      break;
    case MAGPIE_UPLOAD_FAILED:
      magpie_photo_set_failed (photo, error != NULL ? error : "");
      break;
    default:
      magpie_photo_set_state (photo, MAGPIE_PHOTO_STATE_WAITING);
      break;
    }
  update_pending (self);
}

/* The library keeps its photos in <data_dir>/photos and its database in <data_dir>;
 * thumbnails are a cache in <cache_dir>/thumbnails. Nothing is read until loading. */
MagpieLibrary *
magpie_library_new (const char *data_dir,
                    const char *cache_dir)
{
  MagpieLibrary *self;
  g_autofree char *db_path = NULL;

  g_return_val_if_fail (data_dir != NULL, NULL);
  g_return_val_if_fail (cache_dir != NULL, NULL);

  self = g_object_new (MAGPIE_TYPE_LIBRARY, NULL);
  self->photos_dir = g_build_filename (data_dir, "photos", NULL);
  self->thumbnail_dir = g_build_filename (cache_dir, "thumbnails", NULL);
  db_path = g_build_filename (data_dir, "library.sqlite", NULL);
  self->store = magpie_store_new (db_path);
  self->outbox = magpie_outbox_new (self->store, self->photos_dir);
  g_signal_connect_object (self->outbox, "entry-changed",
                           G_CALLBACK (outbox_entry_changed_cb), self, G_CONNECT_SWAPPED);
  return self;
}

MagpieOutbox *
magpie_library_get_outbox (MagpieLibrary *self)
{
  g_return_val_if_fail (MAGPIE_IS_LIBRARY (self), NULL);
  return self->outbox;
}

const char *
magpie_library_get_thumbnail_dir (MagpieLibrary *self)
{
  g_return_val_if_fail (MAGPIE_IS_LIBRARY (self), NULL);
  return self->thumbnail_dir;
}

MagpieTagger *
magpie_library_get_tagger (MagpieLibrary *self)
{
  g_return_val_if_fail (MAGPIE_IS_LIBRARY (self), NULL);
  return self->tagger;
}

/* Waits until every change asked for so far is on disk: for quitting, and for tests. */
void
magpie_library_sync (MagpieLibrary *self)
{
  g_return_if_fail (MAGPIE_IS_LIBRARY (self));
  magpie_store_sync (self->store);
}

guint
magpie_library_get_n_pending (MagpieLibrary *self)
{
  g_return_val_if_fail (MAGPIE_IS_LIBRARY (self), 0);
  return self->n_pending;
}

gboolean
magpie_library_get_loaded (MagpieLibrary *self)
{
  g_return_val_if_fail (MAGPIE_IS_LIBRARY (self), FALSE);
  return self->loaded;
}

/* Photos without tags, and those added later, are tagged with @tagger (may be NULL). Tags from
 * a model @tagger replaces stay: a new model comes from the server while it is online, so those
 * photos are on their way there and will have the server's tags in a moment. */
void
magpie_library_set_tagger (MagpieLibrary *self,
                           MagpieTagger  *tagger)
{
  g_return_if_fail (MAGPIE_IS_LIBRARY (self));
  g_return_if_fail (tagger == NULL || MAGPIE_IS_TAGGER (tagger));

  if (!g_set_object (&self->tagger, tagger) || tagger == NULL)
    return;
  for (guint i = 0; i < self->photos->len; i++)
    if (magpie_photo_get_tags (self->photos->pdata[i])->len == 0)
      tag_locally (self, self->photos->pdata[i]);
}

MagpiePhoto *
magpie_library_find (MagpieLibrary *self,
                     gint64         id)
{
  g_return_val_if_fail (MAGPIE_IS_LIBRARY (self), NULL);

  for (guint i = 0; i < self->photos->len; i++)
    if (magpie_photo_get_id (self->photos->pdata[i]) == id)
      return self->photos->pdata[i];
  return NULL;
}

static void
add_photo (MagpieLibrary *self,
           MagpiePhoto   *photo)
{
  g_ptr_array_insert (self->photos, 0, g_object_ref (photo));
  items_changed (self, 0, 0, 1);
  if (magpie_photo_get_tags (photo)->len == 0)
    tag_locally (self, photo);
}

/* Tags ------------------------------------------------------------------------------------ */

typedef struct {
  gint64     id;
  GPtrArray *tags;
  int        source;
} TagsArgs;

static void
tags_args_free (TagsArgs *args)
{
  g_ptr_array_unref (args->tags);
  g_free (args);
}

static gpointer
set_tags_sql (sqlite3   *db,
              gpointer   data,
              GError   **error)
{
  TagsArgs *args = data;
  sqlite3_stmt *stmt = NULL;

  if (!magpie_store_exec (db, "BEGIN IMMEDIATE", error))
    return NULL;
  if (!magpie_store_run_ids (db, "DELETE FROM tags WHERE photo = ?", "saving tags", error, 1,
                             (gint64) args->id))
    {
      magpie_store_exec (db, "ROLLBACK", NULL);
      return NULL;
    }

  if (sqlite3_prepare_v2 (db, "INSERT OR REPLACE INTO tags (photo, label, confidence, source) "
                          "VALUES (?, ?, ?, ?)", -1, &stmt, NULL) != SQLITE_OK)
    goto fail;
  for (guint i = 0; i < args->tags->len; i++)
    {
      const MagpieTag *tag = args->tags->pdata[i];

      sqlite3_reset (stmt);
      sqlite3_bind_int64 (stmt, 1, args->id);
      sqlite3_bind_text (stmt, 2, tag->label, -1, SQLITE_TRANSIENT);
      sqlite3_bind_double (stmt, 3, tag->confidence);
      sqlite3_bind_int (stmt, 4, args->source);
      if (sqlite3_step (stmt) != SQLITE_DONE)
        {
          sqlite3_finalize (stmt);
          goto fail;
        }
    }
  sqlite3_finalize (stmt);
  if (!magpie_store_exec (db, "COMMIT", error))
    return NULL;
  return GINT_TO_POINTER (1);

fail:
  return magpie_store_fail_transaction (db, "saving tags", error);
}

static void
store_done_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (magpie_store_run_finish (MAGPIE_STORE (object), result, &error) == NULL && error != NULL)
    g_warning ("Cannot save a change to the library: %s", error->message);
}

/* Shows @tags from @source on @photo and saves them. Local tags never replace the server's. */
void
magpie_library_set_tags (MagpieLibrary   *self,
                         MagpiePhoto     *photo,
                         GPtrArray       *tags,
                         MagpieTagSource  source)
{
  TagsArgs *args;

  g_return_if_fail (MAGPIE_IS_LIBRARY (self));
  g_return_if_fail (MAGPIE_IS_PHOTO (photo));

  if (!magpie_photo_set_tags (photo, tags, source))
    return;
  if (source == MAGPIE_TAG_SOURCE_SERVER)
    magpie_photo_set_state (photo, MAGPIE_PHOTO_STATE_TAGGED);

  args = g_new0 (TagsArgs, 1);
  args->id = magpie_photo_get_id (photo);
  args->tags = g_ptr_array_ref (magpie_photo_get_tags (photo));
  args->source = source;
  magpie_store_run_async (self->store, set_tags_sql, args, (GDestroyNotify) tags_args_free,
                          NULL, NULL, store_done_cb, NULL);
}

typedef struct {
  MagpieLibrary *library;
  MagpiePhoto   *photo;
} TagCall;

static void
tag_call_free (TagCall *call)
{
  g_object_unref (call->library);
  g_object_unref (call->photo);
  g_free (call);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TagCall, tag_call_free)

static void
tagged_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(TagCall) call = user_data;
  g_autoptr(GPtrArray) tags = NULL;
  g_autoptr(GError) error = NULL;

  tags = magpie_tagger_tag_finish (MAGPIE_TAGGER (object), result, &error);
  if (tags == NULL)
    {
      if (!g_error_matches (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_NO_MODEL) &&
          !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_warning ("Cannot tag %s on this device: %s", magpie_photo_get_name (call->photo),
                   error->message);
      return;
    }
  /* Not after the library was disposed (its store is gone then), nor from a model since
   * replaced, whose answer may come after the new one's. */
  if (call->library->store != NULL && tags->len > 0 &&
      MAGPIE_TAGGER (object) == call->library->tagger)
    magpie_library_set_tags (call->library, call->photo, tags, MAGPIE_TAG_SOURCE_LOCAL);
}

static void
tag_locally (MagpieLibrary *self,
             MagpiePhoto   *photo)
{
  TagCall *call;

  if (self->tagger == NULL)
    return;
  call = g_new0 (TagCall, 1);
  call->library = g_object_ref (self);
  call->photo = g_object_ref (photo);
  magpie_tagger_tag_async (self->tagger, magpie_photo_get_file (photo), NULL, tagged_cb, call);
}

/* Load ------------------------------------------------------------------------------------ */

static void
unlink_photo_files (const char *photos_dir,
                    const char *thumbnail_dir,
                    const char *sha256,
                    const char *extension)
{
  g_autofree char *name = g_strdup_printf ("%s.%s", sha256, extension);
  g_autofree char *path = g_build_filename (photos_dir, name, NULL);
  g_autoptr(GDir) dir = NULL;
  const char *entry;

  if (g_unlink (path) != 0 && errno != ENOENT)
    g_warning ("Cannot remove %s: %s", path, g_strerror (errno));

  dir = g_dir_open (thumbnail_dir, 0, NULL);
  while (dir != NULL && (entry = g_dir_read_name (dir)) != NULL)
    if (g_str_has_prefix (entry, sha256))
      {
        g_autofree char *thumb = g_build_filename (thumbnail_dir, entry, NULL);

        g_unlink (thumb);
      }
}

typedef struct {
  char   *photos_dir;
  char   *thumbnail_dir;
  gint64  id;   /* for purge */
} DirsArgs;

static void
dirs_args_free (DirsArgs *args)
{
  g_free (args->photos_dir);
  g_free (args->thumbnail_dir);
  g_free (args);
}

static DirsArgs *
dirs_args_new (MagpieLibrary *self,
               gint64         id)
{
  DirsArgs *args = g_new0 (DirsArgs, 1);

  args->photos_dir = g_strdup (self->photos_dir);
  args->thumbnail_dir = g_strdup (self->thumbnail_dir);
  args->id = id;
  return args;
}

/* Deletes photo @id if it is still marked deleted, files included. */
static gboolean
purge_one (sqlite3    *db,
           DirsArgs   *args,
           gint64      id,
           GError    **error)
{
  g_autoptr(MagpieStoreRow) row = magpie_store_read_row (db, id, error);

  if (row == NULL)
    return error == NULL || *error == NULL;
  if (!magpie_store_run_ids (db, "DELETE FROM photos WHERE id = ? AND deleted = 1",
                             "deleting a photo", error, 1, (gint64) id))
    return FALSE;
  if (sqlite3_changes (db) > 0 && row->sha256 != NULL)
    unlink_photo_files (args->photos_dir, args->thumbnail_dir, row->sha256, row->extension);
  return TRUE;
}

static gpointer
load_sql (sqlite3   *db,
          gpointer   data,
          GError   **error)
{
  DirsArgs *args = data;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GArray) deleted = g_array_new (FALSE, FALSE, sizeof (gint64));
  sqlite3_stmt *stmt = NULL;
  char *sql;

  /* Deletions whose undo toast outlived the last run, and uploads a dead process held. */
  if (sqlite3_prepare_v2 (db, "SELECT id FROM photos WHERE deleted = 1", -1, &stmt, NULL) ==
      SQLITE_OK)
    while (sqlite3_step (stmt) == SQLITE_ROW)
      {
        gint64 id = sqlite3_column_int64 (stmt, 0);

        g_array_append_val (deleted, id);
      }
  sqlite3_finalize (stmt);
  for (guint i = 0; i < deleted->len; i++)
    if (!purge_one (db, args, g_array_index (deleted, gint64, i), error))
      return NULL;

  sql = g_strdup_printf ("UPDATE photos SET upload = %d WHERE upload = %d",
                         MAGPIE_UPLOAD_WAITING, MAGPIE_UPLOAD_UPLOADING);
  if (!magpie_store_exec (db, sql, error))
    {
      g_free (sql);
      return NULL;
    }
  g_free (sql);

  rows = magpie_store_read_all_rows (db, error);
  return g_steal_pointer (&rows);
}

static void
resumed_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(MagpieLibrary) self = user_data;
  g_autoptr(MagpieStoreRow) row = NULL;
  g_autoptr(GError) error = NULL;
  gboolean duplicate = FALSE;

  row = magpie_outbox_import_finish (MAGPIE_OUTBOX (object), result, &duplicate, &error);
  if (row == NULL)
    {
      g_warning ("Cannot finish an import the last run began: %s", error->message);
      return;
    }
  if (!duplicate && self->store != NULL && magpie_library_find (self, row->id) == NULL)
    {
      g_autoptr(MagpiePhoto) photo = photo_from_row (self, row);

      add_photo (self, photo);
    }
}

static void
loaded_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  MagpieLibrary *self = g_task_get_source_object (task);
  g_autoptr(GPtrArray) rows = NULL;
  GError *error = NULL;
  guint before = self->photos->len;
  guint added = 0;

  rows = magpie_store_run_finish (MAGPIE_STORE (object), result, &error);
  if (rows == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  /* Oldest first from the store, newest first in the list: each goes in front. Imports made
   * before loading finished are already in the list and stay in front of these. */
  for (guint i = 0; i < rows->len; i++)
    {
      const MagpieStoreRow *row = rows->pdata[i];
      g_autoptr(MagpiePhoto) photo = NULL;

      if (row->upload == MAGPIE_UPLOAD_IMPORTING)
        {
          magpie_outbox_resume_import_async (self->outbox, row, NULL, resumed_cb,
                                             g_object_ref (self));
          continue;
        }
      if (magpie_library_find (self, row->id) != NULL)
        continue;
      photo = photo_from_row (self, row);
      g_ptr_array_insert (self->photos, before, g_object_ref (photo));
      added++;
    }
  if (added > 0)
    items_changed (self, before, 0, added);

  self->loaded = TRUE;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LOADED]);
  if (self->tagger != NULL)
    for (guint i = before; i < before + added; i++)
      if (magpie_photo_get_tags (self->photos->pdata[i])->len == 0)
        tag_locally (self, self->photos->pdata[i]);
  g_task_return_boolean (task, TRUE);
}

/* Reads the library on the store's thread; the list fills when it is done. */
void
magpie_library_load_async (MagpieLibrary       *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (MAGPIE_IS_LIBRARY (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_library_load_async);
  magpie_store_run_async (self->store, load_sql, dirs_args_new (self, 0),
                          (GDestroyNotify) dirs_args_free, (GDestroyNotify) g_ptr_array_unref,
                          NULL, loaded_cb, task);
}

gboolean
magpie_library_load_finish (MagpieLibrary  *self,
                            GAsyncResult   *result,
                            GError        **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* Delete ---------------------------------------------------------------------------------- */

static gpointer
mark_deleted_sql (sqlite3   *db,
                  gpointer   data,
                  GError   **error)
{
  gint64 *args = data;

  if (!magpie_store_run_ids (db, "UPDATE photos SET deleted = ? WHERE id = ?",
                             "deleting a photo", error, 2, (gint64) args[1], (gint64) args[0]))
    return NULL;
  return GINT_TO_POINTER (1);
}

static void
mark_deleted (MagpieLibrary *self,
              MagpiePhoto   *photo,
              gboolean       deleted)
{
  gint64 *args = g_new (gint64, 2);

  args[0] = magpie_photo_get_id (photo);
  args[1] = deleted;
  magpie_store_run_async (self->store, mark_deleted_sql, args, g_free, NULL, NULL,
                          store_done_cb, NULL);
}

/* Takes @photo out of the list and marks it deleted; restore brings it back, purge (or the
 * next start) deletes it for good. */
void
magpie_library_remove (MagpieLibrary *self,
                       MagpiePhoto   *photo)
{
  guint position;

  g_return_if_fail (MAGPIE_IS_LIBRARY (self));
  g_return_if_fail (MAGPIE_IS_PHOTO (photo));

  if (!g_ptr_array_find (self->photos, photo, &position))
    return;
  g_ptr_array_add (self->removed, g_object_ref (photo));
  g_ptr_array_remove_index (self->photos, position);
  items_changed (self, position, 1, 0);
  mark_deleted (self, photo, TRUE);
}

/* Undoes magpie_library_remove(): the photo goes back where its import time puts it. */
void
magpie_library_restore (MagpieLibrary *self,
                        MagpiePhoto   *photo)
{
  GDateTime *imported;
  guint position = 0;

  g_return_if_fail (MAGPIE_IS_LIBRARY (self));
  g_return_if_fail (MAGPIE_IS_PHOTO (photo));

  if (!g_ptr_array_find (self->removed, photo, &position))
    return;
  /* The removed list's reference becomes the list's. */
  g_ptr_array_steal_index (self->removed, position);
  position = 0;
  imported = magpie_photo_get_imported (photo);
  while (position < self->photos->len)
    {
      MagpiePhoto *other = self->photos->pdata[position];
      GDateTime *other_imported = magpie_photo_get_imported (other);
      int order = (imported != NULL && other_imported != NULL)
                  ? g_date_time_compare (other_imported, imported) : 0;

      if (order < 0 || (order == 0 && magpie_photo_get_id (other) < magpie_photo_get_id (photo)))
        break;
      position++;
    }
  g_ptr_array_insert (self->photos, position, photo);
  items_changed (self, position, 0, 1);
  mark_deleted (self, photo, FALSE);
}

static gpointer
purge_sql (sqlite3   *db,
           gpointer   data,
           GError   **error)
{
  DirsArgs *args = data;

  return purge_one (db, args, args->id, error) ? GINT_TO_POINTER (1) : NULL;
}

/* Deletes a removed @photo for good: its row, its copy and its thumbnails. */
void
magpie_library_purge (MagpieLibrary *self,
                      MagpiePhoto   *photo)
{
  g_return_if_fail (MAGPIE_IS_LIBRARY (self));
  g_return_if_fail (MAGPIE_IS_PHOTO (photo));

  if (!g_ptr_array_remove (self->removed, photo))
    return;
  magpie_store_run_async (self->store, purge_sql,
                          dirs_args_new (self, magpie_photo_get_id (photo)),
                          (GDestroyNotify) dirs_args_free, NULL, NULL, store_done_cb, NULL);
}

/* Import ---------------------------------------------------------------------------------- */

typedef struct {
  GPtrArray          *roots;     /* GFile, as given */
  GPtrArray          *files;     /* GFile, images found */
  GPtrArray          *names;     /* char*, their display names */
  guint               next;
  guint               running;
  MagpieImportResult *result;
} ImportJob;

static void
import_job_free (ImportJob *job)
{
  g_ptr_array_unref (job->roots);
  g_clear_pointer (&job->files, g_ptr_array_unref);
  g_clear_pointer (&job->names, g_ptr_array_unref);
  magpie_import_result_free (job->result);
  g_free (job);
}

static void
collect (ImportJob    *job,
         GFile        *file,
         GFileInfo    *info,
         GCancellable *cancellable)
{
  const char *name = g_file_info_get_display_name (info);
  const char *type;
  g_autofree char *mime = NULL;

  if (g_file_info_get_file_type (info) == G_FILE_TYPE_DIRECTORY)
    {
      g_autoptr(GFileEnumerator) children = NULL;
      g_autoptr(GError) error = NULL;
      GFileInfo *child_info;
      GFile *child;

      children = g_file_enumerate_children (file,
                                            G_FILE_ATTRIBUTE_STANDARD_TYPE ","
                                            G_FILE_ATTRIBUTE_STANDARD_DISPLAY_NAME ","
                                            G_FILE_ATTRIBUTE_STANDARD_CONTENT_TYPE ","
                                            G_FILE_ATTRIBUTE_STANDARD_IS_HIDDEN,
                                            G_FILE_QUERY_INFO_NONE, cancellable, &error);
      if (children == NULL)
        {
          g_ptr_array_add (job->result->failed, g_strdup_printf ("%s: %s", name, error->message));
          return;
        }
      while (g_file_enumerator_iterate (children, &child_info, &child, cancellable, &error) &&
             child_info != NULL)
        if (!g_file_info_get_is_hidden (child_info))
          collect (job, child, child_info, cancellable);
      return;
    }

  type = g_file_info_get_content_type (info);
  mime = type != NULL ? g_content_type_get_mime_type (type) : NULL;
  if (mime != NULL && g_str_has_prefix (mime, "image/"))
    {
      g_ptr_array_add (job->files, g_object_ref (file));
      g_ptr_array_add (job->names, g_strdup (name));
    }
  else
    g_ptr_array_add (job->result->refused, g_strdup (name));
}

/* Thread: walks folders and sorts images (by content, not by name) from everything else. */
static void
collect_thread (GTask        *task,
                gpointer      source_object,
                gpointer      task_data,
                GCancellable *cancellable)
{
  ImportJob *job = g_task_get_task_data (task_data);

  for (guint i = 0; i < job->roots->len; i++)
    {
      GFile *root = job->roots->pdata[i];
      g_autoptr(GError) error = NULL;
      g_autoptr(GFileInfo) info = NULL;

      info = g_file_query_info (root,
                                G_FILE_ATTRIBUTE_STANDARD_TYPE ","
                                G_FILE_ATTRIBUTE_STANDARD_DISPLAY_NAME ","
                                G_FILE_ATTRIBUTE_STANDARD_CONTENT_TYPE,
                                G_FILE_QUERY_INFO_NONE, cancellable, &error);
      if (info == NULL)
        {
          g_autofree char *name = g_file_get_basename (root);

          g_ptr_array_add (job->result->failed, g_strdup_printf ("%s: %s", name, error->message));
          continue;
        }
      collect (job, root, info, cancellable);
    }
  g_task_return_boolean (task, TRUE);
}

static void import_next (GTask *task);

typedef struct {
  GTask *task;
  guint  index;
} ImportOne;

static void
imported_one_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  ImportOne *one = user_data;
  g_autoptr(GTask) task = one->task;
  MagpieLibrary *self = g_task_get_source_object (task);
  ImportJob *job = g_task_get_task_data (task);
  const char *name = job->names->pdata[one->index];
  g_autoptr(MagpieStoreRow) row = NULL;
  g_autoptr(GError) error = NULL;
  gboolean duplicate = FALSE;

  g_free (one);
  job->running--;
  row = magpie_outbox_import_finish (MAGPIE_OUTBOX (object), result, &duplicate, &error);
  if (row == NULL)
    {
      if (g_error_matches (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_NOT_AN_IMAGE))
        g_ptr_array_add (job->result->refused, g_strdup (name));
      else
        {
          g_warning ("Cannot import %s: %s", name, error->message);
          g_ptr_array_add (job->result->failed, g_strdup_printf ("%s: %s", name, error->message));
        }
    }
  else if (duplicate || magpie_library_find (self, row->id) != NULL)
    job->result->n_duplicates++;
  else if (self->store != NULL)
    {
      g_autoptr(MagpiePhoto) photo = photo_from_row (self, row);

      add_photo (self, photo);
      job->result->n_added++;
    }
  import_next (g_steal_pointer (&task));
}

static void
import_next (GTask *task)
{
  MagpieLibrary *self = g_task_get_source_object (task);
  ImportJob *job = g_task_get_task_data (task);

  while (job->running < MAGPIE_LIBRARY_IMPORT_CONCURRENCY && job->next < job->files->len)
    {
      ImportOne *one = g_new0 (ImportOne, 1);

      one->task = g_object_ref (task);
      one->index = job->next++;
      job->running++;
      magpie_outbox_import_async (self->outbox, job->files->pdata[one->index],
                                  job->names->pdata[one->index], g_task_get_cancellable (task),
                                  imported_one_cb, one);
    }
  if (job->running == 0 && job->next == job->files->len)
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
collected_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  GTask *task = G_TASK (result);

  g_task_propagate_boolean (task, NULL);
  import_next (g_object_ref (g_task_get_task_data (task)));
}

/* Imports @files: images among them and in folders among them. The one way photos come in,
 * whether dropped, pasted, chosen or named on the command line. Finishes with what was
 * added, what was there already and what was refused. */
void
magpie_library_import_async (MagpieLibrary       *self,
                             GFile              **files,
                             guint                n_files,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  GTask *task;
  GTask *collect_task;
  ImportJob *job;

  g_return_if_fail (MAGPIE_IS_LIBRARY (self));
  g_return_if_fail (files != NULL || n_files == 0);

  job = g_new0 (ImportJob, 1);
  job->roots = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < n_files; i++)
    g_ptr_array_add (job->roots, g_object_ref (files[i]));
  job->files = g_ptr_array_new_with_free_func (g_object_unref);
  job->names = g_ptr_array_new_with_free_func (g_free);
  job->result = g_new0 (MagpieImportResult, 1);
  job->result->refused = g_ptr_array_new_with_free_func (g_free);
  job->result->failed = g_ptr_array_new_with_free_func (g_free);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_library_import_async);
  g_task_set_task_data (task, job, (GDestroyNotify) import_job_free);

  /* The walk runs in its own task whose data is the import task, handed back when done. */
  collect_task = g_task_new (self, cancellable, collected_cb, NULL);
  g_task_set_task_data (collect_task, task, g_object_unref);
  g_task_run_in_thread (collect_task, collect_thread);
  g_object_unref (collect_task);
}

MagpieImportResult *
magpie_library_import_finish (MagpieLibrary  *self,
                              GAsyncResult   *result,
                              GError        **error)
{
  ImportJob *job;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  job = g_task_get_task_data (G_TASK (result));
  return g_steal_pointer (&job->result);
}

/* The photo with these bytes, or NULL. */
MagpiePhoto *
magpie_library_find_by_sha256 (MagpieLibrary *self,
                               const char    *sha256)
{
  g_return_val_if_fail (MAGPIE_IS_LIBRARY (self), NULL);

  if (sha256 == NULL)
    return NULL;
  for (guint i = 0; i < self->photos->len; i++)
    if (g_strcmp0 (magpie_photo_get_sha256 (self->photos->pdata[i]), sha256) == 0)
      return self->photos->pdata[i];
  return NULL;
}

/* Shows what the server says about a photo (its photo JSON, from POST /v1/photos, GET
 * /v1/photos or an event): the server's tags replace local ones once it has tagged it.
 * Returns whether the photo is in this library. */
gboolean
magpie_library_apply_server_photo (MagpieLibrary *self,
                                   JsonNode      *node)
{
  JsonObject *object;
  MagpiePhoto *photo;
  const char *state;
  g_autoptr(GPtrArray) tags = NULL;

  g_return_val_if_fail (MAGPIE_IS_LIBRARY (self), FALSE);

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return FALSE;
  object = json_node_get_object (node);
  photo = magpie_library_find_by_sha256 (self, json_object_get_string_member_with_default (
                                                 object, "sha256", NULL));
  if (photo == NULL)
    return FALSE;
  state = json_object_get_string_member_with_default (object, "state", "");
  if (g_str_equal (state, "failed"))
    {
      magpie_photo_set_failed (photo, json_object_get_string_member_with_default (
                                        object, "error", _("The server could not tag it")));
      return TRUE;
    }
  if (!g_str_equal (state, "tagged") || !json_object_has_member (object, "tags") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (object, "tags")))
    return TRUE;

  tags = g_ptr_array_new_with_free_func ((GDestroyNotify) magpie_tag_free);
  {
    JsonArray *array = json_object_get_array_member (object, "tags");

    for (guint i = 0; i < json_array_get_length (array); i++)
      {
        JsonNode *element = json_array_get_element (array, i);
        JsonObject *tag;

        if (!JSON_NODE_HOLDS_OBJECT (element))
          continue;
        tag = json_node_get_object (element);
        if (json_object_get_string_member_with_default (tag, "label", NULL) == NULL)
          continue;
        g_ptr_array_add (tags, magpie_tag_new (json_object_get_string_member (tag, "label"),
                                               json_object_get_double_member_with_default (
                                                 tag, "confidence", 0.0),
                                               MAGPIE_TAG_SOURCE_SERVER));
      }
  }
  magpie_library_set_tags (self, photo, tags, MAGPIE_TAG_SOURCE_SERVER);
  magpie_photo_set_state (photo, MAGPIE_PHOTO_STATE_TAGGED);
  return TRUE;
}
