/* magpie-multipart.h - the bookkeeping of S3 multipart uploads: part ranges, what is done */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Files over this go up in parts: a lost connection then costs one part, not the photo. */
#define MAGPIE_MULTIPART_THRESHOLD (8 * 1024 * 1024)
/* Each part but the last; a few seconds on a slow uplink, few requests on a fast one. */
#define MAGPIE_MULTIPART_PART_SIZE (8 * 1024 * 1024)
/* S3 refuses to complete an upload whose parts (all but the last) are smaller than this. */
#define MAGPIE_MULTIPART_MIN_PART_SIZE (5 * 1024 * 1024)
/* S3's limit on part numbers; the part size grows for files past 10,000 parts. */
#define MAGPIE_MULTIPART_MAX_PARTS 10000

/* A part the store has: its number (from 1), its size and the ETag the store gave it. */
typedef struct {
  guint   number;
  gint64  size;
  char   *etag;
} MagpiePart;

void        magpie_part_clear (MagpiePart *part);
GArray     *magpie_part_array_new (void);

/* Where a part of the file stands, after comparing this client's records with the store's. */
typedef enum {
  MAGPIE_PART_MISSING,    /* to be sent */
  MAGPIE_PART_DONE,       /* recorded here and listed by the store with the same ETag */
  MAGPIE_PART_UNVERIFIED, /* listed by the store only: sent unless the local bytes match */
} MagpiePartState;

typedef struct {
  guint            number;
  gint64           offset;
  gint64           size;
  MagpiePartState  state;
  char            *etag;    /* DONE: the ETag to complete with; UNVERIFIED: the store's */
} MagpiePlannedPart;

/* One multipart upload as the outbox keeps it, so a later run can resume or abort it. */
typedef struct {
  gint64  id;
  gint64  photo;      /* 0 once the photo is gone: the upload is then to be aborted */
  char   *endpoint;
  char   *bucket;
  char   *key;
  char   *upload_id;
  gint64  size;
  gint64  part_size;
  GArray *parts;      /* MagpiePart, by number */
} MagpieMultipartRecord;

void        magpie_multipart_record_free (MagpieMultipartRecord *record);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MagpieMultipartRecord, magpie_multipart_record_free)

gint64      magpie_multipart_part_size   (gint64              size);
guint       magpie_multipart_count_parts (gint64              size,
                                          gint64              part_size);
gboolean    magpie_multipart_part_range  (gint64              size,
                                          gint64              part_size,
                                          guint               number,
                                          gint64             *offset,
                                          gint64             *length);
GArray     *magpie_multipart_plan        (gint64              size,
                                          gint64              part_size,
                                          const GArray       *recorded,
                                          const GArray       *listed);
gint64      magpie_multipart_done_bytes  (const GArray       *plan);
gboolean    magpie_multipart_etag_is_md5 (const char         *etag,
                                          const char         *md5_hex);

G_END_DECLS
