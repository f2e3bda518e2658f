/* magpie-tagger.c - tags photos on this device with the bundled photo model
 *
 * The model (ONNX, with its JSON sidecar naming preprocessing and labels, as a list or a file)
 * is loaded by the first photo to be tagged, on the tagger's own thread: one NnModel is not
 * thread-safe, and one thread keeps the CPU free for the interface. A model that cannot be
 * loaded is reported once in the log and every later request fails at once with
 * MAGPIE_CLIENT_ERROR_NO_MODEL.
 */
#define G_LOG_DOMAIN "magpie-tagger"

#include "config.h"

#include "magpie-tagger.h"

#include "nn-labels.h"

#include <math.h>
#include <string.h>

#include "magpie-client-error.h"
#include "magpie-photo.h"
#include "nn-image.h"
#include "nn.h"

struct _MagpieTagger {
  GObject        parent_instance;

  char          *model_path;
  char          *fallback;   /* tried when model_path cannot be used */
  GThreadPool   *pool;       /* NULL once closed */
  gint           closed;     /* atomic: queued work is dropped */
  /* only touched on the pool's thread */
  NnModel       *model;
  NnImageConfig *config;
  GStrv          labels;
  GError        *load_error;
};

G_DEFINE_FINAL_TYPE (MagpieTagger, magpie_tagger, G_TYPE_OBJECT)

/* The model to use: @configured when set (a path from the settings), otherwise @name
 * (e.g. "photos.onnx") among the installed models, then in the source tree for an
 * uninstalled build. NULL when there is none. */
char *
magpie_tagger_find_model (const char *configured,
                          const char *name)
{
  const char *dirs[] = {
    PKGDATADIR "/models",
    MAGPIE_SOURCE_DIR "/data/models",
  };

  if (configured != NULL && *configured != '\0')
    return g_file_test (configured, G_FILE_TEST_IS_REGULAR) ? g_strdup (configured) : NULL;

  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    {
      g_autofree char *path = g_build_filename (dirs[i], name, NULL);

      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return g_steal_pointer (&path);
    }
  return NULL;
}

static gboolean
tagger_load_path (MagpieTagger  *self,
                  const char    *model_path,
                  GError       **error)
{
  g_autofree char *sidecar = NULL;
  g_autoptr(GError) local_error = NULL;
  g_auto(GStrv) lines = NULL;
  guint n = 0;

  if (model_path == NULL)
    {
      g_set_error_literal (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_NO_MODEL,
                           "no photo model is installed");
      return FALSE;
    }

  self->model = nn_model_new_from_file (model_path, &local_error);
  if (self->model == NULL)
    goto fail;
  /* Half the cores at most: tagging must not make the interface stutter. */
  nn_model_set_threads (self->model, MAX (1, (int) g_get_num_processors () / 2));

  self->config = nn_image_config_new ();
  sidecar = nn_image_sidecar_path (model_path);
  if (!nn_image_config_load (self->config, sidecar, &local_error))
    goto fail;
  nn_image_config_fit_model (self->config, self->model);
  /* "labels": the list itself (data/models/photos.json), or a file of lines (synset.txt) */
  if (self->config->label_names != NULL)
    lines = g_strdupv (self->config->label_names);
  else if (self->config->labels != NULL)
    lines = nn_labels_load (self->config->labels, &local_error);
  else
    g_set_error (&local_error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_NO_MODEL,
                 "%s names no labels", sidecar);
  if (lines == NULL)
    goto fail;
  n = g_strv_length (lines);
  self->labels = g_new0 (char *, n + 1);
  for (guint i = 0; i < n; i++)
    self->labels[i] = nn_label_short_name (lines[i]);
  return TRUE;

fail:
  g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_NO_MODEL,
               "cannot use the photo model %s: %s", model_path, local_error->message);
  g_clear_pointer (&self->model, nn_model_free);
  g_clear_pointer (&self->config, nn_image_config_free);
  return FALSE;
}

/* The model, else the fallback (the bundled model behind a downloaded one). */
static gboolean
tagger_load (MagpieTagger  *self,
             GError       **error)
{
  g_autoptr(GError) local_error = NULL;

  if (self->fallback == NULL || g_strcmp0 (self->fallback, self->model_path) == 0)
    return tagger_load_path (self, self->model_path, error);
  if (tagger_load_path (self, self->model_path, &local_error))
    return TRUE;
  g_message ("%s; using %s instead", local_error->message, self->fallback);
  return tagger_load_path (self, self->fallback, error);
}


static void
tag_worker (gpointer data,
            gpointer user_data)
{
  g_autoptr(GTask) task = data;
  MagpieTagger *self = user_data;
  GFile *file = g_task_get_task_data (task);
  g_autofree char *path = g_file_get_path (file);
  g_autoptr(NnTensor) input = NULL;
  g_autoptr(GPtrArray) tags = NULL;
  g_autofree float *scores = NULL;
  const NnTensor *output;
  GError *error = NULL;
  gsize n;
  gint64 start = g_get_monotonic_time ();

  if (g_atomic_int_get (&self->closed))
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED, "the tagger is closed");
      return;
    }
  if (g_task_return_error_if_cancelled (task))
    return;
  if (self->model == NULL && self->load_error == NULL && !tagger_load (self, &self->load_error))
    g_warning ("Photos are not tagged on this device: %s", self->load_error->message);
  if (self->load_error != NULL)
    {
      g_task_return_error (task, g_error_copy (self->load_error));
      return;
    }

  input = nn_image_load (self->config, path, &error);
  if (input == NULL || !nn_model_run (self->model, input, 1, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  output = nn_model_get_output (self->model, 0);
  n = nn_tensor_numel (output);
  scores = g_memdup2 (output->data, n * sizeof (float));
  nn_scores_to_probabilities (scores, n, scores);

  tags = g_ptr_array_new_with_free_func ((GDestroyNotify) magpie_tag_free);
  for (guint k = 0; k < MAGPIE_TAGGER_TOP_K; k++)
    {
      gsize best = 0;

      for (gsize i = 1; i < n; i++)
        if (scores[i] > scores[best])
          best = i;
      if (scores[best] < MAGPIE_TAGGER_MIN_CONFIDENCE)
        break;
      if (best < g_strv_length (self->labels))
        g_ptr_array_add (tags, magpie_tag_new (self->labels[best], scores[best],
                                               MAGPIE_TAG_SOURCE_LOCAL));
      scores[best] = -1.0f;
    }
  g_debug ("Tagged %s in %.1f ms", path, (g_get_monotonic_time () - start) / 1000.0);
  g_task_return_pointer (task, g_steal_pointer (&tags), (GDestroyNotify) g_ptr_array_unref);
}

static void
magpie_tagger_finalize (GObject *object)
{
  MagpieTagger *self = MAGPIE_TAGGER (object);

  if (self->pool != NULL)
    g_thread_pool_free (self->pool, FALSE, TRUE);
  g_clear_pointer (&self->model, nn_model_free);
  g_clear_pointer (&self->config, nn_image_config_free);
  g_clear_pointer (&self->labels, g_strfreev);
  g_clear_error (&self->load_error);
  g_free (self->model_path);
  g_free (self->fallback);

  G_OBJECT_CLASS (magpie_tagger_parent_class)->finalize (object);
}

static void
magpie_tagger_class_init (MagpieTaggerClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = magpie_tagger_finalize;
}

static void
magpie_tagger_init (MagpieTagger *self)
{
  self->pool = g_thread_pool_new (tag_worker, self, 1, FALSE, NULL);
}

/* A tagger for the ONNX model at @model_path (its sidecar beside it); NULL makes a tagger
 * that says no model is installed. Nothing is loaded until the first photo. */
MagpieTagger *
magpie_tagger_new (const char *model_path)
{
  MagpieTagger *self = g_object_new (MAGPIE_TYPE_TAGGER, NULL);

  self->model_path = g_strdup (model_path);
  return self;
}

/* @fallback (another model with its sidecar) is loaded instead when the model cannot be: the
 * bundled model behind one downloaded from the server. Set before the first photo. */
void
magpie_tagger_set_fallback (MagpieTagger *self,
                            const char   *fallback)
{
  g_return_if_fail (MAGPIE_IS_TAGGER (self));

  g_free (self->fallback);
  self->fallback = g_strdup (fallback);
}

const char *
magpie_tagger_get_model (MagpieTagger *self)
{
  g_return_val_if_fail (MAGPIE_IS_TAGGER (self), NULL);
  return self->model_path;
}

/* Tags the image @file; finishes with its best tags (MagpieTag, local), best first. */
void
magpie_tagger_tag_async (MagpieTagger        *self,
                         GFile               *file,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (MAGPIE_IS_TAGGER (self));
  g_return_if_fail (G_IS_FILE (file));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_tagger_tag_async);
  g_task_set_task_data (task, g_object_ref (file), g_object_unref);
  if (self->pool == NULL)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED, "closed");
      g_object_unref (task);
      return;
    }
  g_thread_pool_push (self->pool, task, NULL);
}

/* Drops the work still queued (it finishes as cancelled) and waits for the running piece:
 * the process may then exit without a thread still inside the model. */
void
magpie_tagger_close (MagpieTagger *self)
{
  g_return_if_fail (MAGPIE_IS_TAGGER (self));

  g_atomic_int_set (&self->closed, TRUE);
  if (self->pool != NULL)
    g_thread_pool_free (g_steal_pointer (&self->pool), FALSE, TRUE);
}

GPtrArray *
magpie_tagger_tag_finish (MagpieTagger  *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
