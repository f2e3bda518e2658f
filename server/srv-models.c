/* srv-models.c - the served models: bytes, sidecar, labels, engine instances, classify */
#include "config.h"

#include "srv-models.h"

#include "nn-labels.h"

#include <gio/gio.h>
#include <string.h>

#include "srv-tags.h"

/* Idle engine instances kept for request handlers: the blocking pool has
 * SRV_HTTP_BLOCKING_THREADS threads, so at most that many run at once. */
#define SRV_MODEL_POOL_MAX 8

struct _SrvModel {
  char          *name;
  char          *path;
  char          *sha256;
  GBytes        *bytes;
  NnImageConfig *image;
  GStrv          labels;
  gint64         input_numel;  /* per item */
  gboolean       dynamic_batch;
  int            input_rank;
  int64_t        input_ne[NN_MAX_DIMS];

  GMutex         lock;
  GPtrArray     *idle;         /* NnModel* */
};

char *
srv_models_find_default (const char *file_name)
{
  g_autofree char *installed = g_build_filename (PKGDATADIR, "models", file_name, NULL);
  g_autofree char *source = g_build_filename (SRV_SOURCE_DATA_DIR, "models", file_name, NULL);

  if (g_file_test (installed, G_FILE_TEST_IS_REGULAR))
    return g_steal_pointer (&installed);
  if (g_file_test (source, G_FILE_TEST_IS_REGULAR))
    return g_steal_pointer (&source);
  return NULL;
}

SrvModel *
srv_model_load (const char  *name,
                const char  *path,
                GError     **error)
{
  g_autoptr(SrvModel) self = g_new0 (SrvModel, 1);
  g_autoptr(NnModel) probe = NULL;
  g_autofree char *sidecar = nn_image_sidecar_path (path);
  g_autofree char *contents = NULL;
  gsize length;

  g_mutex_init (&self->lock);
  self->idle = g_ptr_array_new_with_free_func ((GDestroyNotify) nn_model_free);
  self->name = g_strdup (name);
  self->path = g_strdup (path);
  self->image = nn_image_config_new ();
  if (!g_file_get_contents (path, &contents, &length, error))
    return NULL;
  self->sha256 = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents,
                                              length);
  self->bytes = g_bytes_new_take (g_steal_pointer (&contents), length);
  probe = srv_model_new_instance (self, error);
  if (probe == NULL)
    {
      g_prefix_error (error, "%s: ", path);
      return NULL;
    }
  if (g_file_test (sidecar, G_FILE_TEST_EXISTS) &&
      !nn_image_config_load (self->image, sidecar, error))
    return NULL;
  nn_image_config_fit_model (self->image, probe);
  if (self->image->width <= 0 || self->image->height <= 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: the model's input size is "
                   "not fixed; give input_size in its sidecar %s", path, sidecar);
      return NULL;
    }
  /* A sidecar names its labels inline (the bundled models) or as a file (synset.txt). */
  if (self->image->label_names != NULL)
    self->labels = g_strdupv (self->image->label_names);
  else if (self->image->labels != NULL)
    {
      self->labels = nn_labels_load (self->image->labels, error);
      if (self->labels == NULL)
        {
          g_prefix_error (error, "labels of %s: ", path);
          return NULL;
        }
    }

  self->input_rank = nn_model_get_input_shape (probe, 0, self->input_ne);
  self->dynamic_batch = self->input_rank > 0 && self->input_ne[0] < 0;
  self->input_numel = 1;
  for (int d = 1; d < self->input_rank; d++)
    self->input_numel *= MAX (self->input_ne[d], 1);
  if (self->input_rank < 2 || self->input_numel <= 1)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: the model's input has no fixed item shape", path);
      return NULL;
    }
  g_ptr_array_add (self->idle, g_steal_pointer (&probe));
  return g_steal_pointer (&self);
}

void
srv_model_free (SrvModel *self)
{
  if (self == NULL)
    return;
  g_clear_pointer (&self->idle, g_ptr_array_unref);
  g_mutex_clear (&self->lock);
  g_clear_pointer (&self->image, nn_image_config_free);
  g_clear_pointer (&self->bytes, g_bytes_unref);
  g_strfreev (self->labels);
  g_free (self->sha256);
  g_free (self->path);
  g_free (self->name);
  g_free (self);
}

const char *
srv_model_get_name (SrvModel *self)
{
  return self->name;
}

const char *
srv_model_get_sha256 (SrvModel *self)
{
  return self->sha256;
}

GBytes *
srv_model_get_bytes (SrvModel *self)
{
  return self->bytes;
}

const char * const *
srv_model_get_labels (SrvModel *self)
{
  return (const char * const *) self->labels;
}

const NnImageConfig *
srv_model_get_image_config (SrvModel *self)
{
  return self->image;
}

gint64
srv_model_get_input_numel (SrvModel *self)
{
  return self->input_numel;
}

gboolean
srv_model_can_batch (SrvModel *self)
{
  return self->dynamic_batch;
}

NnModel *
srv_model_new_instance (SrvModel  *self,
                        GError   **error)
{
  gsize length;
  const void *data = g_bytes_get_data (self->bytes, &length);
  NnModel *instance = nn_model_new_from_data (data, length, error);

  if (instance != NULL)
    nn_model_set_threads (instance, 1);
  return instance;
}

NnModel *
srv_model_acquire (SrvModel  *self,
                   GError   **error)
{
  NnModel *instance = NULL;

  g_mutex_lock (&self->lock);
  if (self->idle->len > 0)
    instance = g_ptr_array_steal_index_fast (self->idle, self->idle->len - 1);
  g_mutex_unlock (&self->lock);
  return instance ? instance : srv_model_new_instance (self, error);
}

void
srv_model_release (SrvModel *self,
                   NnModel  *instance)
{
  g_mutex_lock (&self->lock);
  if (self->idle->len < SRV_MODEL_POOL_MAX)
    g_ptr_array_add (self->idle, g_steal_pointer (&instance));
  g_mutex_unlock (&self->lock);
  g_clear_pointer (&instance, nn_model_free);
}

/* Runs one input tensor and splits the first output into per-item probabilities. */
static float *
run (SrvModel    *self,
     NnModel     *instance,
     NnTensor    *input,
     guint        n,
     guint       *n_classes,
     GError     **error)
{
  const NnTensor *out;
  gint64 per_item;
  float *probs;

  if (!nn_model_run (instance, input, 1, error))
    return NULL;
  out = nn_model_get_output (instance, 0);
  if (out->dtype != NN_DTYPE_FLOAT || nn_tensor_numel (out) % n != 0 ||
      nn_tensor_numel (out) / n < 1 || nn_tensor_numel (out) / n > G_MAXINT)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_INVALID, "model %s: its output does not hold "
                   "one float score vector per image", self->name);
      return NULL;
    }
  per_item = nn_tensor_numel (out) / n;
  probs = g_new (float, per_item * n);
  for (guint i = 0; i < n; i++)
    nn_scores_to_probabilities ((const float *) out->data + i * per_item, (guint) per_item,
                      probs + i * per_item);
  *n_classes = (guint) per_item;
  return probs;
}

float *
srv_model_classify (SrvModel          *self,
                    NnModel           *instance,
                    GdkPixbuf * const *images,
                    guint              n,
                    guint             *n_classes,
                    GError           **error)
{
  g_autofree float *all = NULL;
  guint k = 0;

  g_return_val_if_fail (n > 0, NULL);

  if (self->dynamic_batch && n > 1)
    {
      g_autoptr(NnTensor) batch = NULL;
      int64_t ne[NN_MAX_DIMS];

      memcpy (ne, self->input_ne, sizeof ne);
      ne[0] = n;
      batch = nn_tensor_new (NN_DTYPE_FLOAT, self->input_rank, ne);
      for (guint i = 0; i < n; i++)
        {
          g_autoptr(NnTensor) one = nn_image_from_pixbuf (self->image, images[i]);

          if (one == NULL || nn_tensor_numel (one) != self->input_numel)
            {
              g_set_error (error, NN_ERROR, NN_ERROR_INPUT, "model %s: preprocessing gave "
                           "the wrong input size", self->name);
              return NULL;
            }
          memcpy ((float *) batch->data + i * self->input_numel, one->data,
                  self->input_numel * sizeof (float));
        }
      return run (self, instance, batch, n, n_classes, error);
    }

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(NnTensor) one = nn_image_from_pixbuf (self->image, images[i]);
      g_autofree float *p = NULL;

      if (one == NULL || nn_tensor_numel (one) != self->input_numel)
        {
          g_set_error (error, NN_ERROR, NN_ERROR_INPUT, "model %s: preprocessing gave "
                       "the wrong input size", self->name);
          return NULL;
        }
      /* a fixed batch-1 model reads the image's own shape; reshape to the declared one */
      one->ndim = self->input_rank;
      memcpy (one->ne, self->input_ne, sizeof one->ne);
      one->ne[0] = 1;
      p = run (self, instance, one, 1, &k, error);
      if (p == NULL)
        return NULL;
      if (all == NULL)
        all = g_new (float, (gsize) k * n);
      memcpy (all + (gsize) i * k, p, k * sizeof (float));
    }
  *n_classes = k;
  return g_steal_pointer (&all);
}

float *
srv_model_run_raw (SrvModel     *self,
                   NnModel      *instance,
                   const float  *input,
                   guint        *n_classes,
                   GError      **error)
{
  g_autoptr(NnTensor) t = NULL;
  int64_t ne[NN_MAX_DIMS];

  memcpy (ne, self->input_ne, sizeof ne);
  ne[0] = 1;
  t = nn_tensor_new (NN_DTYPE_FLOAT, self->input_rank, ne);
  memcpy (t->data, input, self->input_numel * sizeof (float));
  return run (self, instance, t, 1, n_classes, error);
}
