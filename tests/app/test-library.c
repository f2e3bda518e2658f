/* test-library.c - the photo library, its outbox and the local tagger, on real files */
#include "config.h"

#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "app-test-util.h"
#include "magpie-client-error.h"
#include "magpie-library.h"
#include "magpie-outbox.h"
#include "magpie-tagger.h"
#include "nn-image.h"

typedef struct {
  char *dir;
  char *data_dir;
  char *cache_dir;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->dir = mp_test_make_tmpdir ("magpie-library");
  f->data_dir = g_build_filename (f->dir, "data", NULL);
  f->cache_dir = g_build_filename (f->dir, "cache", NULL);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  mp_test_rm_rf (f->dir);
  g_free (f->dir);
  g_free (f->data_dir);
  g_free (f->cache_dir);
}

static char *
shared_photo (const char *name)
{
  g_autofree char *rel = g_build_filename ("photos", name, NULL);
  char *path = mp_test_shared_data (rel);

  if (path == NULL || !g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_test_skip ("the shared photos are not there");
      g_free (path);
      return NULL;
    }
  return path;
}

static gboolean
result_arrived (gpointer user_data)
{
  return *(GAsyncResult **) user_data != NULL;
}

static void
store_result_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static GAsyncResult *
wait_result (GAsyncResult **slot)
{
  g_assert_true (app_test_wait (result_arrived, slot, 30000));
  return *slot;
}

static void
load (MagpieLibrary *library)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  magpie_library_load_async (library, NULL, store_result_cb, &result);
  magpie_library_load_finish (library, wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_true (magpie_library_get_loaded (library));
}

static MagpieImportResult *
import (MagpieLibrary *library,
        const char   **paths)
{
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  MagpieImportResult *imported;

  for (guint i = 0; paths[i] != NULL; i++)
    g_ptr_array_add (files, g_file_new_for_path (paths[i]));
  magpie_library_import_async (library, (GFile **) files->pdata, files->len, NULL,
                               store_result_cb, &result);
  imported = magpie_library_import_finish (library, wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (imported);
  return imported;
}

static char *
sha256_of (const char *path)
{
  g_autofree char *contents = NULL;
  gsize length = 0;

  g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, length);
}

static void
test_object_key (void)
{
  g_autofree char *key = NULL;
  const char *sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

  key = magpie_outbox_object_key ("eu-west-1:42", sha, "jpg");
  g_assert_cmpstr (key, ==, "users/eu-west-1:42/"
                   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.jpg");

  if (g_test_undefined ())
    {
      g_test_expect_message ("magpie-outbox", G_LOG_LEVEL_CRITICAL, "*identity*");
      g_assert_null (magpie_outbox_object_key ("", sha, "jpg"));
      g_test_assert_expected_messages ();
      g_test_expect_message ("magpie-outbox", G_LOG_LEVEL_CRITICAL, "*sha256*");
      g_assert_null (magpie_outbox_object_key ("id", "abc", "jpg"));
      g_test_assert_expected_messages ();
    }
}

static void
test_backoff (void)
{
  gint64 previous = 0;

  /* Doubling from 2 s, within [half, full] of the step, capped at 10 minutes. */
  g_assert_cmpint (magpie_outbox_backoff_us (1, 0.0), ==, 1 * G_USEC_PER_SEC);
  g_assert_cmpint (magpie_outbox_backoff_us (1, 1.0), ==, 2 * G_USEC_PER_SEC);
  g_assert_cmpint (magpie_outbox_backoff_us (3, 1.0), ==, 8 * G_USEC_PER_SEC);
  for (int attempt = 1; attempt < 40; attempt++)
    {
      gint64 low = magpie_outbox_backoff_us (attempt, 0.0);
      gint64 high = magpie_outbox_backoff_us (attempt, 0.999);

      g_assert_cmpint (low, >=, previous);
      g_assert_cmpint (high, >=, low);
      g_assert_cmpint (high, <=, 600 * G_USEC_PER_SEC);
      previous = low;
    }
  g_assert_cmpint (magpie_outbox_backoff_us (39, 0.0), ==, 300 * G_USEC_PER_SEC);
}

static void
test_import (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *cat = shared_photo ("cat_winml.jpg");
  g_autofree char *temple = shared_photo ("china_temple_sklearn.jpg");
  g_autofree char *chelsea = shared_photo ("chelsea_cat_skimage.png");
  g_autofree char *folder = g_build_filename (f->dir, "folder", NULL);
  g_autofree char *text = g_build_filename (folder, "notes.txt", NULL);
  g_autofree char *fake = g_build_filename (folder, "fake.jpg", NULL);
  g_autofree char *inner = g_build_filename (folder, "inner", NULL);
  g_autofree char *copy = g_build_filename (inner, "again.PNG", NULL);
  g_autoptr(MagpieLibrary) library = NULL;
  g_autoptr(MagpieImportResult) first = NULL;
  g_autoptr(MagpieImportResult) second = NULL;
  g_autofree char *contents = NULL;
  gsize length;

  if (cat == NULL || temple == NULL || chelsea == NULL)
    return;

  /* A folder holding a text file, a broken image, and (one level down) the
   * same bytes as a photo imported beside it. */
  g_assert_cmpint (g_mkdir_with_parents (inner, 0700), ==, 0);
  g_assert_true (g_file_set_contents (text, "not a photo\n", -1, NULL));
  /* Sniffed as a PNG, but no loader can read it. */
  g_assert_true (g_file_set_contents (fake, "\x89PNG\r\n\x1a\n but nothing else", -1, NULL));
  g_assert_true (g_file_get_contents (chelsea, &contents, &length, NULL));
  g_assert_true (g_file_set_contents (copy, contents, length, NULL));

  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 0);

  {
    const char *paths[] = { cat, temple, chelsea, folder, NULL };

    first = import (library, paths);
  }
  g_assert_cmpuint (first->n_added, ==, 3);
  g_assert_cmpuint (first->n_duplicates, ==, 1);
  g_assert_cmpuint (first->failed->len, ==, 0);
  g_assert_cmpuint (first->refused->len, ==, 2);
  g_assert_true (g_ptr_array_find_with_equal_func (first->refused, "notes.txt", g_str_equal, NULL));
  g_assert_true (g_ptr_array_find_with_equal_func (first->refused, "fake.jpg", g_str_equal, NULL));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 3);

  /* Each photo is a copy named by the hash of its bytes, one per distinct original. */
  {
    g_autofree char *sha_cat = sha256_of (cat);
    g_autofree char *sha_temple = sha256_of (temple);
    g_autofree char *sha_chelsea = sha256_of (chelsea);
    const char *originals[] = { sha_cat, sha_temple, sha_chelsea };
    gboolean seen[3] = { FALSE, FALSE, FALSE };

    for (guint i = 0; i < 3; i++)
      {
        g_autoptr(MagpiePhoto) photo = g_list_model_get_item (G_LIST_MODEL (library), i);
        g_autofree char *path = g_file_get_path (magpie_photo_get_file (photo));
        g_autofree char *sha = sha256_of (path);
        int width = 0;

        g_assert_true (g_str_has_prefix (path, f->data_dir));
        g_assert_cmpstr (sha, ==, magpie_photo_get_sha256 (photo));
        for (guint j = 0; j < 3; j++)
          if (g_str_equal (sha, originals[j]))
            {
              g_assert_false (seen[j]);
              seen[j] = TRUE;
              g_assert_true (g_str_has_suffix (path, j == 2 ? ".png" : ".jpg"));
            }
        magpie_photo_get_dimensions (photo, &width, NULL);
        g_assert_cmpint (width, >, 0);
        g_assert_cmpint (magpie_photo_get_state (photo), ==, MAGPIE_PHOTO_STATE_WAITING);
      }
    g_assert_true (seen[0] && seen[1] && seen[2]);
  }

  /* The same bytes again add nothing. */
  {
    const char *paths[] = { temple, cat, NULL };

    second = import (library, paths);
  }
  g_assert_cmpuint (second->n_added, ==, 0);
  g_assert_cmpuint (second->n_duplicates, ==, 2);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 3);
}

static void
test_persist (Fixture       *f,
              gconstpointer  data)
{
  g_autofree char *cat = shared_photo ("cat_winml.jpg");
  g_autofree char *temple = shared_photo ("china_temple_sklearn.jpg");
  g_autoptr(MagpieLibrary) library = NULL;
  g_autoptr(MagpieLibrary) again = NULL;
  g_autoptr(MagpieImportResult) result = NULL;
  g_autoptr(GPtrArray) tags = g_ptr_array_new_with_free_func ((GDestroyNotify) magpie_tag_free);
  g_autoptr(MagpiePhoto) newest = NULL;
  g_autoptr(MagpiePhoto) loaded = NULL;
  GPtrArray *loaded_tags;
  const char *paths[] = { NULL, NULL };

  if (cat == NULL || temple == NULL)
    return;

  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  paths[0] = cat;
  g_clear_pointer (&result, magpie_import_result_free);
  result = import (library, paths);
  paths[0] = temple;
  g_clear_pointer (&result, magpie_import_result_free);
  result = import (library, paths);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 2);

  newest = g_list_model_get_item (G_LIST_MODEL (library), 0);
  g_assert_cmpstr (magpie_photo_get_name (newest), ==, "china_temple_sklearn.jpg");
  g_ptr_array_add (tags, magpie_tag_new ("pagoda", 0.4, MAGPIE_TAG_SOURCE_LOCAL));
  g_ptr_array_add (tags, magpie_tag_new ("temple", 0.7, MAGPIE_TAG_SOURCE_LOCAL));
  magpie_library_set_tags (library, newest, tags, MAGPIE_TAG_SOURCE_SERVER);
  g_assert_cmpint (magpie_photo_get_state (newest), ==, MAGPIE_PHOTO_STATE_TAGGED);
  /* Local tags never replace the server's. */
  g_ptr_array_set_size (tags, 0);
  g_ptr_array_add (tags, magpie_tag_new ("umbrella", 0.9, MAGPIE_TAG_SOURCE_LOCAL));
  magpie_library_set_tags (library, newest, tags, MAGPIE_TAG_SOURCE_LOCAL);
  g_assert_cmpuint (magpie_photo_get_tags (newest)->len, ==, 2);
  magpie_library_sync (library);
  g_clear_object (&library);

  /* A second start sees the same photos, order and tags. */
  again = magpie_library_new (f->data_dir, f->cache_dir);
  load (again);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (again)), ==, 2);
  loaded = g_list_model_get_item (G_LIST_MODEL (again), 0);
  g_assert_cmpstr (magpie_photo_get_sha256 (loaded), ==, magpie_photo_get_sha256 (newest));
  loaded_tags = magpie_photo_get_tags (loaded);
  g_assert_cmpuint (loaded_tags->len, ==, 2);
  g_assert_cmpstr (((MagpieTag *) loaded_tags->pdata[0])->label, ==, "temple");
  g_assert_cmpfloat_with_epsilon (((MagpieTag *) loaded_tags->pdata[0])->confidence, 0.7, 1e-9);
  g_assert_cmpint (((MagpieTag *) loaded_tags->pdata[0])->source, ==, MAGPIE_TAG_SOURCE_SERVER);
  g_assert_true (magpie_photo_matches (loaded, "TEM", 0.5));
  g_assert_false (magpie_photo_matches (loaded, "pago", 0.5));
  g_assert_true (magpie_photo_matches (loaded, "pago", 0.3));
  g_assert_false (magpie_photo_matches (loaded, "cat", 0.0));
}

/* An import recorded just before a crash (the row, nothing else) is finished at the next
 * start from the recorded source. */
static void
test_resume_import (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *cat = shared_photo ("cat_winml.jpg");
  g_autoptr(MagpieLibrary) library = NULL;
  g_autofree char *db_path = g_build_filename (f->data_dir, "library.sqlite", NULL);
  g_autofree char *uri = NULL;
  g_autofree char *sql = NULL;
  g_autoptr(MagpiePhoto) photo = NULL;
  sqlite3 *db = NULL;

  if (cat == NULL)
    return;

  /* Create the schema the way the app does, then write the row the app writes first. */
  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  magpie_library_sync (library);
  g_clear_object (&library);

  uri = g_filename_to_uri (cat, NULL, NULL);
  sql = sqlite3_mprintf ("INSERT INTO photos (source, name, imported, upload) "
                         "VALUES (%Q, 'cat_winml.jpg', 1700000000, 0)", uri);
  g_assert_cmpint (sqlite3_open (db_path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, sql, NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);
  sqlite3_free (g_steal_pointer (&sql));

  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  g_assert_true (app_test_wait ((AppTestCondition) g_list_model_get_n_items, library, 30000));
  photo = g_list_model_get_item (G_LIST_MODEL (library), 0);
  g_assert_cmpstr (magpie_photo_get_name (photo), ==, "cat_winml.jpg");
  g_assert_true (g_file_query_exists (magpie_photo_get_file (photo), NULL));
}

static MagpieStoreRow *
take (MagpieOutbox *outbox,
      gint64       *next_due)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  MagpieStoreRow *row;

  magpie_outbox_take_async (outbox, NULL, store_result_cb, &result);
  row = magpie_outbox_take_finish (outbox, wait_result (&result), next_due, &error);
  g_assert_no_error (error);
  return row;
}

static MagpieStoreRow *
fail (MagpieOutbox *outbox,
      gint64        id,
      gboolean      retryable)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  MagpieStoreRow *row;

  magpie_outbox_fail_async (outbox, id, "The server is busy", retryable, NULL,
                            store_result_cb, &result);
  row = magpie_outbox_update_finish (outbox, wait_result (&result), &error);
  g_assert_no_error (error);
  return row;
}

static void
test_outbox_cycle (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *cat = shared_photo ("cat_winml.jpg");
  g_autofree char *temple = shared_photo ("china_temple_sklearn.jpg");
  g_autoptr(MagpieLibrary) library = NULL;
  g_autoptr(MagpieImportResult) imported = NULL;
  g_autoptr(MagpieStoreRow) first = NULL;
  g_autoptr(MagpieStoreRow) second = NULL;
  g_autoptr(MagpieStoreRow) none = NULL;
  g_autoptr(MagpieStoreRow) failed = NULL;
  g_autoptr(MagpieStoreRow) done = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  MagpieOutbox *outbox;
  MagpiePhoto *photo;
  gint64 next_due = 0;
  gint64 before;

  if (cat == NULL || temple == NULL)
    return;

  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  {
    const char *paths[] = { cat, temple, NULL };

    imported = import (library, paths);
  }
  g_assert_cmpuint (imported->n_added, ==, 2);
  g_assert_cmpuint (magpie_library_get_n_pending (library), ==, 2);
  outbox = magpie_library_get_outbox (library);

  first = take (outbox, NULL);
  g_assert_nonnull (first);
  g_assert_cmpint (first->upload, ==, MAGPIE_UPLOAD_UPLOADING);
  photo = magpie_library_find (library, first->id);
  g_assert_cmpint (magpie_photo_get_state (photo), ==, MAGPIE_PHOTO_STATE_UPLOADING);

  magpie_outbox_set_progress (outbox, first->id, first->size / 2, first->size);
  second = take (outbox, NULL);
  g_assert_nonnull (second);
  g_assert_cmpint (second->id, !=, first->id);
  g_assert_cmpfloat_with_epsilon (magpie_photo_get_progress (photo), 0.5, 0.01);

  /* Nothing else is due. */
  none = take (outbox, &next_due);
  g_assert_null (none);
  g_assert_cmpint (next_due, ==, 0);

  /* A retryable failure waits out a backoff; a second take finds nothing due yet. */
  before = g_get_real_time ();
  failed = fail (outbox, first->id, TRUE);
  g_assert_cmpint (failed->upload, ==, MAGPIE_UPLOAD_WAITING);
  g_assert_cmpint (failed->attempts, ==, 1);
  g_assert_cmpint (failed->next_attempt, >=, before + G_USEC_PER_SEC);
  g_assert_cmpint (magpie_photo_get_state (photo), ==, MAGPIE_PHOTO_STATE_WAITING);
  none = take (outbox, &next_due);
  g_assert_null (none);
  g_assert_cmpint (next_due, ==, failed->next_attempt);

  /* A permanent failure is shown with its reason. */
  g_clear_pointer (&failed, magpie_store_row_free);
  failed = fail (outbox, second->id, FALSE);
  g_assert_cmpint (failed->upload, ==, MAGPIE_UPLOAD_FAILED);
  photo = magpie_library_find (library, second->id);
  g_assert_cmpint (magpie_photo_get_state (photo), ==, MAGPIE_PHOTO_STATE_FAILED);
  g_assert_cmpstr (magpie_photo_get_failure_reason (photo), ==, "The server is busy");
  /* Failed for good is not pending any more; the retried one still is. */
  g_assert_cmpuint (magpie_library_get_n_pending (library), ==, 1);

  magpie_outbox_complete_async (outbox, first->id, NULL, store_result_cb, &result);
  done = magpie_outbox_update_finish (outbox, wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_cmpint (done->upload, ==, MAGPIE_UPLOAD_UPLOADED);
  g_assert_cmpint (done->sent, ==, done->size);
  photo = magpie_library_find (library, first->id);
  g_assert_cmpint (magpie_photo_get_state (photo), ==, MAGPIE_PHOTO_STATE_TAGGING);
  g_assert_cmpuint (magpie_library_get_n_pending (library), ==, 0);
}

/* An entry taken by a process that then died is due again at the next start. */
static void
test_outbox_restart (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *cat = shared_photo ("cat_winml.jpg");
  g_autoptr(MagpieLibrary) library = NULL;
  g_autoptr(MagpieImportResult) imported = NULL;
  g_autoptr(MagpieStoreRow) taken = NULL;
  g_autoptr(MagpieStoreRow) again = NULL;
  const char *paths[] = { NULL, NULL };

  if (cat == NULL)
    return;
  paths[0] = cat;

  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  imported = import (library, paths);
  taken = take (magpie_library_get_outbox (library), NULL);
  g_assert_nonnull (taken);
  magpie_library_sync (library);
  g_clear_object (&library);

  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  again = take (magpie_library_get_outbox (library), NULL);
  g_assert_nonnull (again);
  g_assert_cmpint (again->id, ==, taken->id);
}

static void
test_delete (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *cat = shared_photo ("cat_winml.jpg");
  g_autofree char *temple = shared_photo ("china_temple_sklearn.jpg");
  g_autoptr(MagpieLibrary) library = NULL;
  g_autoptr(MagpieImportResult) imported = NULL;
  g_autoptr(MagpiePhoto) newest = NULL;
  g_autoptr(MagpiePhoto) oldest = NULL;
  g_autoptr(MagpiePhoto) back = NULL;
  g_autoptr(GFile) newest_file = NULL;

  if (cat == NULL || temple == NULL)
    return;

  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  {
    const char *paths[] = { cat, NULL };

    imported = import (library, paths);
    g_clear_pointer (&imported, magpie_import_result_free);
    paths[0] = temple;
    imported = import (library, paths);
  }
  newest = g_list_model_get_item (G_LIST_MODEL (library), 0);
  oldest = g_list_model_get_item (G_LIST_MODEL (library), 1);
  newest_file = g_object_ref (magpie_photo_get_file (newest));

  /* Undo puts it back where it was. */
  magpie_library_remove (library, newest);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 1);
  magpie_library_restore (library, newest);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 2);
  back = g_list_model_get_item (G_LIST_MODEL (library), 0);
  g_assert_true (back == newest);

  /* Removed and then the app quit before the toast went: gone at the next start. */
  magpie_library_remove (library, newest);
  magpie_library_sync (library);
  g_clear_object (&library);
  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 1);
  g_assert_false (g_file_query_exists (newest_file, NULL));

  /* Removed and purged: the file goes at once. */
  g_clear_object (&oldest);
  oldest = g_list_model_get_item (G_LIST_MODEL (library), 0);
  magpie_library_remove (library, oldest);
  magpie_library_purge (library, oldest);
  magpie_library_sync (library);
  g_clear_object (&library);
  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 0);
  g_assert_false (g_file_query_exists (magpie_photo_get_file (oldest), NULL));
}

static gboolean
has_thumbnail (gpointer user_data)
{
  return magpie_photo_get_thumbnail (user_data) != NULL;
}

static void
test_thumbnail (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *temple = shared_photo ("china_temple_sklearn.jpg");
  g_autoptr(MagpieLibrary) library = NULL;
  g_autoptr(MagpieImportResult) imported = NULL;
  g_autoptr(MagpiePhoto) photo = NULL;
  g_autoptr(GDir) dir = NULL;
  const char *paths[] = { NULL, NULL };
  GdkTexture *thumbnail;

  if (temple == NULL)
    return;
  paths[0] = temple;

  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  imported = import (library, paths);
  photo = g_list_model_get_item (G_LIST_MODEL (library), 0);
  magpie_photo_ensure_thumbnail (photo, magpie_library_get_thumbnail_dir (library));
  g_assert_true (app_test_wait (has_thumbnail, photo, 30000));
  thumbnail = magpie_photo_get_thumbnail (photo);
  /* 640×427 scaled into 320×320 keeping the aspect. */
  g_assert_cmpint (gdk_texture_get_width (thumbnail), ==, 320);
  g_assert_cmpint (gdk_texture_get_height (thumbnail), <, 320);
  dir = g_dir_open (magpie_library_get_thumbnail_dir (library), 0, NULL);
  g_assert_nonnull (dir);
  g_assert_true (g_str_has_prefix (g_dir_read_name (dir), magpie_photo_get_sha256 (photo)));
}

static gboolean
thumbnail_settled (gpointer user_data)
{
  return magpie_photo_get_thumbnail (user_data) != NULL ||
         magpie_photo_get_thumbnail_failed (user_data);
}

static gint64
vm_hwm_kb (void)
{
  g_autofree char *status = NULL;
  const char *line;

  g_assert_true (g_file_get_contents ("/proc/self/status", &status, NULL, NULL));
  line = strstr (status, "\nVmHWM:");
  g_assert_nonnull (line);
  return g_ascii_strtoll (line + strlen ("\nVmHWM:"), NULL, 10);
}

static GBytes *
png_chunk (const char *kind,
           const void *data,
           gsize       length)
{
  GByteArray *chunk = g_byte_array_new ();
  guint32 be = GUINT32_TO_BE ((guint32) length);
  guint32 crc = crc32 (0, (const Bytef *) kind, 4);

  crc = crc32 (crc, data, length);
  g_byte_array_append (chunk, (const guint8 *) &be, 4);
  g_byte_array_append (chunk, (const guint8 *) kind, 4);
  g_byte_array_append (chunk, data, length);
  be = GUINT32_TO_BE (crc);
  g_byte_array_append (chunk, (const guint8 *) &be, 4);
  return g_byte_array_free_to_bytes (chunk);
}

/* A valid PNG header declaring @side×@side RGB pixels, and one compressed row. */
static GBytes *
png_declaring (guint32 side)
{
  GByteArray *png = g_byte_array_new ();
  guint8 ihdr[13] = { 0 };
  guint32 be = GUINT32_TO_BE (side);
  gsize row = 1 + 3 * (gsize) side;
  g_autofree guint8 *zeros = g_malloc0 (row);
  uLongf packed_len = compressBound (row);
  g_autofree guint8 *packed = g_malloc (packed_len);
  GBytes *parts[3];

  memcpy (ihdr, &be, 4);
  memcpy (ihdr + 4, &be, 4);
  ihdr[8] = 8;   /* bits */
  ihdr[9] = 2;   /* RGB */
  g_assert_cmpint (compress (packed, &packed_len, zeros, row), ==, Z_OK);
  parts[0] = png_chunk ("IHDR", ihdr, sizeof ihdr);
  parts[1] = png_chunk ("IDAT", packed, packed_len);
  parts[2] = png_chunk ("IEND", "", 0);
  g_byte_array_append (png, (const guint8 *) "\x89PNG\r\n\x1a\n", 8);
  for (guint i = 0; i < 3; i++)
    {
      gsize n;
      const guint8 *d = g_bytes_get_data (parts[i], &n);

      g_byte_array_append (png, d, n);
      g_bytes_unref (parts[i]);
    }
  return g_byte_array_free_to_bytes (png);
}

/* 1 GiB of zeros as gzip: 1 MiB members, concatenated (RFC 1952 allows it). */
static GBytes *
gzip_bomb (void)
{
  g_autoptr(GZlibCompressor) gz = g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP, 9);
  g_autofree guint8 *zeros = g_malloc0 (1 << 20);
  g_autofree guint8 *member = g_malloc (1 << 20);
  GByteArray *bomb = g_byte_array_new ();
  gsize read = 0, written = 0;

  g_assert_cmpint (g_converter_convert (G_CONVERTER (gz), zeros, 1 << 20, member, 1 << 20,
                                        G_CONVERTER_INPUT_AT_END, &read, &written, NULL),
                   ==, G_CONVERTER_FINISHED);
  for (guint i = 0; i < 1024; i++)
    g_byte_array_append (bomb, member, written);
  return g_byte_array_free_to_bytes (bomb);
}

static GBytes *
cut (GBytes *whole,
     double  fraction)
{
  return g_bytes_new_from_bytes (whole, 0, (gsize) (g_bytes_get_size (whole) * fraction));
}

/* Hostile files through the app's import path and its thumbnailer: each is refused at import
 * with a reason, or (a header that looks fine over a body that is not) stored and then fails
 * its thumbnail with one, quickly and without the memory its header claims. The PNG inside a
 * .jpg is a photo: the content decides. Prints a table of what happened. Before the pixel
 * limit at import and mp-image in the thumbnailer, the 20000×20000 PNG (under 200 bytes) was
 * imported and its thumbnail took 14 s and 1.2 GB of RSS (gdk_pixbuf_new_from_file_at_scale
 * decodes a PNG at full size, then scales). */
static void
test_hostile (Fixture       *f,
              gconstpointer  data)
{
  g_autofree char *cat = shared_photo ("cat_winml.jpg");
  g_autofree char *chelsea = shared_photo ("chelsea_cat_skimage.png");
  g_autofree char *dir = g_build_filename (f->dir, "hostile", NULL);
  g_autoptr(MagpieLibrary) library = NULL;
  g_autoptr(GBytes) jpeg = NULL;
  g_autoptr(GBytes) png = NULL;
  const double bound_s = 2.0 * mp_test_slowdown ();
  /* One thumbnail's worth of decoding, with room: the 100000×100000 PNG would be 30 GB. */
  const gint64 hwm_bound_kb = 64 * 1024;
  gint64 hwm_start;
  enum { ADDED, REFUSED, FAILED };
  struct {
    const char *name;
    const char *file;
    GBytes     *bytes;
    int         import;      /* what the import must do */
    const char *reason;      /* a word the import's or the thumbnail's reason must hold */
  } cases[] = {
    { "truncated JPEG", "truncated.jpg", NULL, ADDED, "truncated" },
    { "truncated PNG", "truncated.png", NULL, ADDED, "truncated" },
    { "zero bytes", "empty.jpg", g_bytes_new_static ("", 0), REFUSED, NULL },
    { "text called .jpg", "letter.jpg", NULL, REFUSED, NULL },
    { "PNG called .jpg", "png-inside.jpg", NULL, ADDED, NULL },
    { "PNG of 100000x100000", "huge.png", png_declaring (100000), FAILED, "100000×100000" },
    { "PNG of 20000x20000", "large.png", png_declaring (20000), FAILED, "megapixels" },
    { "SVG of 100000x100000", "drawing.jpg",
      g_bytes_new_static ("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100000\" "
                          "height=\"100000\"><rect width=\"100000\" height=\"100000\"/></svg>\n",
                          strlen ("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100000\" "
                          "height=\"100000\"><rect width=\"100000\" height=\"100000\"/></svg>\n")),
      REFUSED, NULL },
    { "gzip bomb (1 GiB)", "bomb.png", gzip_bomb (), REFUSED, NULL },
  };

  if (cat == NULL || chelsea == NULL)
    return;
  {
    g_autofree char *contents = NULL;
    gsize length = 0;

    g_assert_true (g_file_get_contents (cat, &contents, &length, NULL));
    jpeg = g_bytes_new_take (g_steal_pointer (&contents), length);
    g_assert_true (g_file_get_contents (chelsea, &contents, &length, NULL));
    png = g_bytes_new_take (g_steal_pointer (&contents), length);
  }
  cases[0].bytes = cut (jpeg, 0.6);
  cases[1].bytes = cut (png, 0.5);
  cases[3].bytes = g_bytes_new_static ("Dear reader, this is not a photo.\n", 34);
  cases[4].bytes = g_bytes_ref (png);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);

  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  /* Warm-up: a good photo imported and thumbnailed, so that the loaders' first use is not
   * charged to the first hostile file. */
  {
    const char *paths[] = { cat, NULL };
    g_autoptr(MagpieImportResult) imported = import (library, paths);
    g_autoptr(MagpiePhoto) photo = g_list_model_get_item (G_LIST_MODEL (library), 0);

    g_assert_cmpuint (imported->n_added, ==, 1);
    magpie_photo_ensure_thumbnail (photo, magpie_library_get_thumbnail_dir (library));
    g_assert_true (app_test_wait (thumbnail_settled, photo, 30000));
    g_assert_nonnull (magpie_photo_get_thumbnail (photo));
  }
  hwm_start = vm_hwm_kb ();

  g_test_message ("%-22s | %-8s | %-24s | %7s | %9s | %s", "case", "import", "thumbnail",
                  "time", "VmHWM", "reason");
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = g_build_filename (dir, cases[i].file, NULL);
      g_autoptr(MagpieImportResult) imported = NULL;
      g_autofree char *thumbnail = g_strdup ("-");
      g_autofree char *reason = NULL;
      const char *paths[] = { path, NULL };
      guint before_n = g_list_model_get_n_items (G_LIST_MODEL (library));
      gint64 before_kb = vm_hwm_kb ();
      gint64 start;
      double seconds;

      g_assert_true (g_file_set_contents (path, g_bytes_get_data (cases[i].bytes, NULL),
                                          g_bytes_get_size (cases[i].bytes), NULL));
      start = g_get_monotonic_time ();
      if (cases[i].import == FAILED)
        g_test_expect_message ("magpie-library", G_LOG_LEVEL_WARNING, "Cannot import *");
      imported = import (library, paths);
      g_test_assert_expected_messages ();
      if (cases[i].import == ADDED)
        {
          g_autoptr(MagpiePhoto) photo = NULL;

          g_assert_cmpuint (imported->n_added, ==, 1);
          g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, before_n + 1);
          for (guint j = 0; photo == NULL && j < before_n + 1; j++)
            {
              g_autoptr(MagpiePhoto) one = g_list_model_get_item (G_LIST_MODEL (library), j);

              if (g_strcmp0 (magpie_photo_get_name (one), cases[i].file) == 0)
                photo = g_steal_pointer (&one);
            }
          g_assert_nonnull (photo);
          if (cases[i].reason != NULL)
            {
              g_autofree char *pattern = g_strdup_printf ("Cannot make a thumbnail of %s: *%s*",
                                                          cases[i].file, cases[i].reason);

              g_test_expect_message ("magpie-photo", G_LOG_LEVEL_WARNING, pattern);
            }
          magpie_photo_ensure_thumbnail (photo, magpie_library_get_thumbnail_dir (library));
          g_assert_true (app_test_wait (thumbnail_settled, photo, 30000));
          g_test_assert_expected_messages ();
          if (cases[i].reason == NULL)
            {
              GdkTexture *texture = magpie_photo_get_thumbnail (photo);

              g_assert_nonnull (texture);
              thumbnail = g_strdup_printf ("%dx%d", gdk_texture_get_width (texture),
                                           gdk_texture_get_height (texture));
            }
          else
            {
              g_assert_true (magpie_photo_get_thumbnail_failed (photo));
              thumbnail = g_strdup ("failed");
            }
        }
      else
        {
          GPtrArray *list = cases[i].import == REFUSED ? imported->refused : imported->failed;

          g_assert_cmpuint (imported->n_added, ==, 0);
          g_assert_cmpuint (list->len, ==, 1);
          g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, before_n);
          reason = g_strdup (cases[i].import == REFUSED ? "not an image" : list->pdata[0]);
        }
      seconds = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
      g_test_message ("%-22s | %-8s | %-24s | %5.3f s | %+6" G_GINT64_FORMAT " kB | %s",
                      cases[i].name,
                      cases[i].import == ADDED ? "added" :
                      cases[i].import == REFUSED ? "refused" : "failed",
                      thumbnail, seconds, vm_hwm_kb () - before_kb,
                      reason != NULL ? reason : cases[i].reason != NULL ? cases[i].reason : "");
      if (cases[i].import == FAILED)
        g_assert_nonnull (strstr (reason, cases[i].reason));
      g_assert_cmpfloat (seconds, <, bound_s);
      g_bytes_unref (cases[i].bytes);
    }
  g_test_message ("VmHWM %" G_GINT64_FORMAT " kB after the warm-up, %" G_GINT64_FORMAT
                  " kB after the hostile files", hwm_start, vm_hwm_kb ());
  g_assert_cmpint (vm_hwm_kb () - hwm_start, <, hwm_bound_kb);
}

static void
tag_cb (GObject      *object,
        GAsyncResult *result,
        gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

/* The bundled photo model is not built yet, so SqueezeNet stands in through a sidecar of
 * the kind data/models ships. */
static void
test_tagger (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *model = mp_test_shared_data ("models/squeezenet1.1-fp32.onnx");
  g_autofree char *synset = mp_test_shared_data ("models/synset.txt");
  g_autofree char *cat = shared_photo ("cat_winml.jpg");
  g_autofree char *text = g_build_filename (f->dir, "notes.txt", NULL);
  g_autofree char *link = g_build_filename (f->dir, "squeezenet.onnx", NULL);
  g_autofree char *sidecar = g_build_filename (f->dir, "squeezenet.json", NULL);
  g_autofree char *json = NULL;
  g_autoptr(MagpieTagger) tagger = NULL;
  g_autoptr(MagpieTagger) missing = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GPtrArray) tags = NULL;
  g_autoptr(GFile) file = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *found = NULL;
  MagpieTag *best;

  if (cat == NULL)
    return;
  if (model == NULL || !g_file_test (model, G_FILE_TEST_IS_REGULAR))
    {
      g_test_skip ("SqueezeNet is not in the shared data");
      return;
    }

  g_assert_cmpint (symlink (model, link), ==, 0);
  json = g_strdup_printf ("{\"resize\": 256, \"channel_order\": \"BGR\", "
                          "\"mean\": [104, 117, 123], \"labels\": \"%s\"}", synset);
  g_assert_true (g_file_set_contents (sidecar, json, -1, NULL));

  found = magpie_tagger_find_model (link, "photos.onnx");
  g_assert_cmpstr (found, ==, link);
  g_clear_pointer (&found, g_free);
  found = magpie_tagger_find_model ("/nonexistent/model.onnx", "photos.onnx");
  g_assert_null (found);

  tagger = magpie_tagger_new (link);
  file = g_file_new_for_path (cat);
  magpie_tagger_tag_async (tagger, file, NULL, tag_cb, &result);
  tags = magpie_tagger_tag_finish (tagger, wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (tags->len, >=, 2);
  best = tags->pdata[0];
  /* SqueezeNet's reference top-1 for this photo: class 285, 0.769. */
  g_assert_cmpstr (best->label, ==, "Egyptian cat");
  g_assert_cmpfloat_with_epsilon (best->confidence, 0.769, 0.01);
  g_assert_cmpint (best->source, ==, MAGPIE_TAG_SOURCE_LOCAL);
  g_assert_cmpfloat (((MagpieTag *) tags->pdata[1])->confidence, <=, best->confidence);

  /* The labels as a list in the sidecar, as data/models/photos.json gives CIFAR-10's. */
  {
    g_autofree char *inline_link = g_build_filename (f->dir, "inline.onnx", NULL);
    g_autofree char *inline_sidecar = g_build_filename (f->dir, "inline.json", NULL);
    g_auto(GStrv) lines = nn_labels_load (synset, &error);
    g_autoptr(GString) list = g_string_new ("{\"resize\": 256, \"channel_order\": \"BGR\", "
                                            "\"mean\": [104, 117, 123], \"labels\": [");
    g_autoptr(MagpieTagger) listed = NULL;

    g_assert_no_error (error);
    for (guint i = 0; lines[i] != NULL; i++)
      {
        g_autofree char *quoted = g_strescape (lines[i], NULL);

        g_string_append_printf (list, "%s\"%s\"", i ? ", " : "", quoted);
      }
    g_string_append (list, "]}");
    g_assert_cmpint (symlink (model, inline_link), ==, 0);
    g_assert_true (g_file_set_contents (inline_sidecar, list->str, -1, NULL));
    listed = magpie_tagger_new (inline_link);
    g_clear_object (&result);
    g_clear_pointer (&tags, g_ptr_array_unref);
    magpie_tagger_tag_async (listed, file, NULL, tag_cb, &result);
    tags = magpie_tagger_tag_finish (listed, wait_result (&result), &error);
    g_assert_no_error (error);
    g_assert_cmpuint (tags->len, >=, 2);
    g_assert_cmpstr (((MagpieTag *) tags->pdata[0])->label, ==, "Egyptian cat");
    g_assert_cmpfloat_with_epsilon (((MagpieTag *) tags->pdata[0])->confidence, 0.769, 0.01);
  }

  /* Not an image: an error, not a crash, and the tagger still works afterwards. */
  g_assert_true (g_file_set_contents (text, "not a photo\n", -1, NULL));
  g_clear_object (&file);
  g_clear_object (&result);
  g_clear_pointer (&tags, g_ptr_array_unref);
  file = g_file_new_for_path (text);
  magpie_tagger_tag_async (tagger, file, NULL, tag_cb, &result);
  tags = magpie_tagger_tag_finish (tagger, wait_result (&result), &error);
  g_assert_null (tags);
  g_assert_nonnull (error);
  g_clear_error (&error);

  /* No model: a clear error every time, logged once. */
  missing = magpie_tagger_new (NULL);
  g_clear_object (&result);
  g_test_expect_message ("magpie-tagger", G_LOG_LEVEL_WARNING, "*no photo model*");
  magpie_tagger_tag_async (missing, file, NULL, tag_cb, &result);
  tags = magpie_tagger_tag_finish (missing, wait_result (&result), &error);
  g_test_assert_expected_messages ();
  g_assert_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_NO_MODEL);
}

/* A library of 5,000 photos loads in well under the second the window has to become
 * interactive in (and off the main thread besides). */
static void
test_load_large (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(MagpieLibrary) library = NULL;
  g_autofree char *db_path = g_build_filename (f->data_dir, "library.sqlite", NULL);
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;
  gint64 start;
  double seconds;

  library = magpie_library_new (f->data_dir, f->cache_dir);
  load (library);
  magpie_library_sync (library);
  g_clear_object (&library);

  g_assert_cmpint (sqlite3_open (db_path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "BEGIN", NULL, NULL, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "INSERT INTO photos (source, name, sha256, extension, "
                                       "size, width, height, imported, upload) VALUES "
                                       "('file:///x', ?, ?, 'jpg', 1000, 640, 480, ?, 1)",
                                       -1, &stmt, NULL), ==, SQLITE_OK);
  for (int i = 0; i < 5000; i++)
    {
      g_autofree char *name = g_strdup_printf ("photo-%04d.jpg", i);
      g_autofree char *sha = g_compute_checksum_for_string (G_CHECKSUM_SHA256, name, -1);

      sqlite3_reset (stmt);
      sqlite3_bind_text (stmt, 1, name, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text (stmt, 2, sha, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64 (stmt, 3, 1700000000 + i);
      g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_DONE);
    }
  sqlite3_finalize (stmt);
  g_assert_cmpint (sqlite3_exec (db, "INSERT INTO tags SELECT id, 'cat', 0.9, 1 FROM photos",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);

  library = magpie_library_new (f->data_dir, f->cache_dir);
  start = g_get_monotonic_time ();
  load (library);
  seconds = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  g_test_message ("5000 photos with tags loaded in %.3f s", seconds);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 5000);
  g_assert_cmpfloat (seconds, <, 1.0 * mp_test_slowdown ());
}

int
main (int   argc,
      char *argv[])
{
  gtk_test_init (&argc, &argv, NULL);

  g_test_add_func ("/app/outbox/object-key", test_object_key);
  g_test_add_func ("/app/outbox/backoff", test_backoff);
  g_test_add ("/app/outbox/cycle", Fixture, NULL, fixture_setup, test_outbox_cycle,
              fixture_teardown);
  g_test_add ("/app/outbox/restart", Fixture, NULL, fixture_setup, test_outbox_restart,
              fixture_teardown);
  g_test_add ("/app/library/import", Fixture, NULL, fixture_setup, test_import,
              fixture_teardown);
  g_test_add ("/app/library/persist", Fixture, NULL, fixture_setup, test_persist,
              fixture_teardown);
  g_test_add ("/app/library/resume-import", Fixture, NULL, fixture_setup, test_resume_import,
              fixture_teardown);
  g_test_add ("/app/library/delete", Fixture, NULL, fixture_setup, test_delete,
              fixture_teardown);
  g_test_add ("/app/library/load-5000", Fixture, NULL, fixture_setup, test_load_large,
              fixture_teardown);
  g_test_add ("/app/library/thumbnail", Fixture, NULL, fixture_setup, test_thumbnail,
              fixture_teardown);
  g_test_add ("/app/library/hostile", Fixture, NULL, fixture_setup, test_hostile,
              fixture_teardown);
  g_test_add ("/app/tagger/squeezenet", Fixture, NULL, fixture_setup, test_tagger,
              fixture_teardown);

  return g_test_run ();
}
