/* magpie-uploader-private.h - what magpie-uploader.c and magpie-uploader-multipart.c share */
#pragma once

#include "magpie-multipart.h"
#include "magpie-uploader.h"

G_BEGIN_DECLS

/* Tries at one step of a multipart upload (a part, the listing, completing) before the
 * photo goes back to the outbox, which retries later from the parts the store has. */
#define MAGPIE_UPLOADER_STEP_ATTEMPTS 5

struct _MagpieUploader {
  GObject            parent_instance;

  SoupSession       *session;
  MagpieLibrary     *library;
  MagpieOutbox      *outbox;
  MagpieConnection  *connection;
  MagpieCredentials *credentials;
  GCancellable      *cancellable;
  GPtrArray         *uploads;     /* Upload, under way */
  MagpieConnectionState last_state;
  guint              retry_source;
  guint              sweep_source;
  guint              n_active;
  guint              n_put;
  guint              n_multipart;
  guint              n_aborted;
  guint64            test_rate;   /* MAGPIE_TEST_UPLOAD_RATE, bytes per second; 0: unpaced */
  gboolean           taking;
  gboolean           again;       /* asked to look again while taking */
  gboolean           sweep_needed; /* abandoned multipart uploads may wait to be aborted */
  gboolean           sweeping;
};

typedef struct _Upload Upload;
typedef void (*UploadStep) (Upload *up);

struct _Upload {
  MagpieUploader        *self;
  MagpieStoreRow        *row;
  MagpieS3Credentials   *creds;
  GCancellable          *cancellable; /* the uploader's, or the photo was deleted */
  char                  *server_url;
  char                  *key;
  int                    last_percent;
  goffset                sent;
  gboolean               abandoned;   /* the photo was deleted while this ran */
  gboolean               called_off;  /* Work Offline was switched on while this ran */

  /* Multipart (magpie-uploader-multipart.c) */
  MagpieMultipartRecord *record;
  GArray                *listed;      /* MagpiePart: what ListParts said so far */
  guint                  list_marker; /* the part number the next page of ListParts is after */
  GArray                *plan;        /* MagpiePlannedPart */
  guint                  part;        /* index in plan of the part under way */
  char                  *part_sha256;
  goffset                part_sent;
  UploadStep             step;        /* what a retry runs again */
  int                    step_attempts;
  guint                  step_source;
  gboolean               started_over;
};

void _magpie_uploader_fail            (Upload     *up,
                                       const char *reason,
                                       gboolean    retryable);
void _magpie_uploader_register_photo  (Upload     *up);
void _magpie_uploader_report_progress (Upload     *up,
                                       goffset     sent);
void _magpie_uploader_multipart       (Upload     *up);
void _magpie_uploader_multipart_clear (Upload     *up);
void _magpie_uploader_sweep           (MagpieUploader *self);

G_END_DECLS
