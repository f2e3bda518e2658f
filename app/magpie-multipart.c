/* magpie-multipart.c - the bookkeeping of S3 multipart uploads: part ranges, what is done
 *
 * Pure functions over plain inputs, so the rules that decide what a resumed upload sends again
 * are tested without a network: a part is done only when this client recorded it AND the store
 * still lists it with the same ETag and the size its number must have. A part the store lists
 * that was never recorded here (the app died between the store's answer and the database
 * write) is not trusted blindly either: the uploader compares the store's ETag (the part's
 * MD5 on S3 and magpied) with the MD5 of the local bytes before skipping it.
 */
#define G_LOG_DOMAIN "magpie-multipart"

#include "config.h"

#include "magpie-multipart.h"

#include <string.h>

void
magpie_part_clear (MagpiePart *part)
{
  g_clear_pointer (&part->etag, g_free);
}

/* An empty array of MagpiePart that frees their ETags. */
GArray *
magpie_part_array_new (void)
{
  GArray *parts = g_array_new (FALSE, TRUE, sizeof (MagpiePart));

  g_array_set_clear_func (parts, (GDestroyNotify) magpie_part_clear);
  return parts;
}

void
magpie_multipart_record_free (MagpieMultipartRecord *record)
{
  if (record == NULL)
    return;
  g_free (record->endpoint);
  g_free (record->bucket);
  g_free (record->key);
  g_free (record->upload_id);
  g_clear_pointer (&record->parts, g_array_unref);
  g_free (record);
}

static void
planned_part_clear (MagpiePlannedPart *part)
{
  g_clear_pointer (&part->etag, g_free);
}

/* The part size for a file of @size bytes: MAGPIE_MULTIPART_PART_SIZE, or larger (in whole
 * MiB) when that would need more than MAGPIE_MULTIPART_MAX_PARTS parts. */
gint64
magpie_multipart_part_size (gint64 size)
{
  gint64 part_size = MAGPIE_MULTIPART_PART_SIZE;
  gint64 mib = 1024 * 1024;

  g_return_val_if_fail (size >= 0, MAGPIE_MULTIPART_PART_SIZE);

  if (size / part_size >= MAGPIE_MULTIPART_MAX_PARTS)
    {
      part_size = size / MAGPIE_MULTIPART_MAX_PARTS + 1;
      part_size = (part_size + mib - 1) / mib * mib;
    }
  return part_size;
}

/* How many parts of @part_size a file of @size bytes is cut into (at least one). */
guint
magpie_multipart_count_parts (gint64 size,
                              gint64 part_size)
{
  g_return_val_if_fail (size >= 0 && part_size > 0, 0);

  if (size == 0)
    return 1;
  return (guint) MIN ((size + part_size - 1) / part_size, G_MAXUINT);
}

/* The bytes of part @number (from 1): FALSE when the file has no such part. */
gboolean
magpie_multipart_part_range (gint64  size,
                             gint64  part_size,
                             guint   number,
                             gint64 *offset,
                             gint64 *length)
{
  gint64 start;

  g_return_val_if_fail (size >= 0 && part_size > 0, FALSE);

  if (number < 1 || number > magpie_multipart_count_parts (size, part_size))
    return FALSE;
  start = (gint64) (number - 1) * part_size;
  if (offset != NULL)
    *offset = start;
  if (length != NULL)
    *length = MIN (part_size, size - start);
  return TRUE;
}

/* An ETag without its quotes (S3 sends "…"; some stores and proxies drop them), lowercased. */
static char *
normalize_etag (const char *etag)
{
  gsize len;

  if (etag == NULL)
    return NULL;
  len = strlen (etag);
  if (len >= 2 && etag[0] == '"' && etag[len - 1] == '"')
    return g_ascii_strdown (etag + 1, len - 2);
  return g_ascii_strdown (etag, len);
}

static gboolean
etags_equal (const char *a,
             const char *b)
{
  g_autofree char *na = normalize_etag (a);
  g_autofree char *nb = normalize_etag (b);

  return na != NULL && nb != NULL && *na != '\0' && g_str_equal (na, nb);
}

/* Whether @etag (as a store sends it) is the part's MD5 @md5_hex: true on S3 without
 * SSE-KMS and on magpied, so a part the store has can be checked without sending it again. */
gboolean
magpie_multipart_etag_is_md5 (const char *etag,
                              const char *md5_hex)
{
  return etags_equal (etag, md5_hex);
}

static const MagpiePart *
find_part (const GArray *parts,
           guint         number)
{
  if (parts == NULL)
    return NULL;
  for (guint i = 0; i < parts->len; i++)
    if (g_array_index (parts, MagpiePart, i).number == number)
      return &g_array_index (parts, MagpiePart, i);
  return NULL;
}

/* Every part of a file of @size bytes in @part_size pieces, in order, with its state after
 * comparing what this client @recorded with what the store @listed (either may be NULL). A
 * listed part of the wrong size is missing: completing with it would assemble other bytes. */
GArray *
magpie_multipart_plan (gint64        size,
                       gint64        part_size,
                       const GArray *recorded,
                       const GArray *listed)
{
  guint n_parts;
  GArray *plan;

  g_return_val_if_fail (size >= 0 && part_size > 0, NULL);

  n_parts = magpie_multipart_count_parts (size, part_size);
  plan = g_array_sized_new (FALSE, TRUE, sizeof (MagpiePlannedPart), n_parts);
  g_array_set_clear_func (plan, (GDestroyNotify) planned_part_clear);
  for (guint number = 1; number <= n_parts; number++)
    {
      MagpiePlannedPart planned = { .number = number, .state = MAGPIE_PART_MISSING };
      const MagpiePart *mine = find_part (recorded, number);
      const MagpiePart *theirs = find_part (listed, number);

      magpie_multipart_part_range (size, part_size, number, &planned.offset, &planned.size);
      if (theirs != NULL && theirs->size == planned.size && theirs->etag != NULL)
        {
          if (mine != NULL && mine->size == planned.size && etags_equal (mine->etag, theirs->etag))
            planned.state = MAGPIE_PART_DONE;
          else
            planned.state = MAGPIE_PART_UNVERIFIED;
          planned.etag = g_strdup (theirs->etag);
        }
      g_array_append_val (plan, planned);
    }
  return plan;
}

/* The bytes of the parts in @plan that are done. */
gint64
magpie_multipart_done_bytes (const GArray *plan)
{
  gint64 done = 0;

  g_return_val_if_fail (plan != NULL, 0);

  for (guint i = 0; i < plan->len; i++)
    if (g_array_index (plan, MagpiePlannedPart, i).state == MAGPIE_PART_DONE)
      done += g_array_index (plan, MagpiePlannedPart, i).size;
  return done;
}
