/* srv-ratelimit.c - token buckets keyed by text, bounded in memory */
#include "config.h"

#include "srv-ratelimit.h"

#include <math.h>

typedef struct {
  double tokens;
  gint64 updated_us;
} Bucket;

struct _SrvRateLimit {
  double      burst;
  double      per_second;
  guint       max_keys;
  GHashTable *buckets;   /* key → Bucket */
};

SrvRateLimit *
srv_ratelimit_new (double burst,
                   double per_second,
                   guint  max_keys)
{
  SrvRateLimit *limit = g_new0 (SrvRateLimit, 1);

  g_return_val_if_fail (burst >= 1 && per_second > 0 && max_keys >= 4, NULL);
  limit->burst = burst;
  limit->per_second = per_second;
  limit->max_keys = max_keys;
  limit->buckets = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return limit;
}

void
srv_ratelimit_free (SrvRateLimit *limit)
{
  if (limit == NULL)
    return;
  g_hash_table_unref (limit->buckets);
  g_free (limit);
}

static void
refill (SrvRateLimit *limit,
        Bucket       *b,
        gint64        now_us)
{
  if (now_us > b->updated_us)
    {
      b->tokens = MIN (limit->burst,
                       b->tokens + (now_us - b->updated_us) * limit->per_second / G_USEC_PER_SEC);
      b->updated_us = now_us;
    }
}

/* Makes room for one more bucket. A bucket that has refilled to the brim is the same as no
 * bucket, so those go first and nothing is lost; if that frees too little (a flood of fresh
 * keys), arbitrary buckets go until a quarter is free, so the cost stays amortised O(1). A
 * key evicted that way starts over with a full bucket: the per-address limit still caps a
 * client that floods account names to reset one. */
static void
make_room (SrvRateLimit *limit,
           gint64        now_us)
{
  GHashTableIter iter;
  gpointer value;
  guint target = limit->max_keys - limit->max_keys / 4;

  g_hash_table_iter_init (&iter, limit->buckets);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Bucket *b = value;

      refill (limit, b, now_us);
      if (b->tokens >= limit->burst)
        g_hash_table_iter_remove (&iter);
    }
  g_hash_table_iter_init (&iter, limit->buckets);
  while (g_hash_table_size (limit->buckets) > target && g_hash_table_iter_next (&iter, NULL, NULL))
    g_hash_table_iter_remove (&iter);
}

gboolean
srv_ratelimit_take (SrvRateLimit *limit,
                    const char   *key,
                    gint64        now_us,
                    guint        *retry_after_s)
{
  Bucket *b;

  g_return_val_if_fail (limit != NULL && key != NULL, FALSE);

  b = g_hash_table_lookup (limit->buckets, key);
  if (b == NULL)
    {
      if (g_hash_table_size (limit->buckets) >= limit->max_keys)
        make_room (limit, now_us);
      b = g_new (Bucket, 1);
      b->tokens = limit->burst;
      b->updated_us = now_us;
      g_hash_table_insert (limit->buckets, g_strdup (key), b);
    }
  refill (limit, b, now_us);
  if (b->tokens >= 1.0)
    {
      b->tokens -= 1.0;
      return TRUE;
    }
  if (retry_after_s)
    *retry_after_s = MAX (1, (guint) ceil ((1.0 - b->tokens) / limit->per_second));
  return FALSE;
}

guint
srv_ratelimit_size (SrvRateLimit *limit)
{
  return g_hash_table_size (limit->buckets);
}
