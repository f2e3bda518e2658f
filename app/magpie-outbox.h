/* magpie-outbox.h - imported photos on disk, waiting for the server */
#pragma once

#include <gio/gio.h>

#include "magpie-multipart.h"
#include "magpie-store.h"

G_BEGIN_DECLS

/* Retries stop after this many failed attempts; the photo is then shown as failed. */
#define MAGPIE_OUTBOX_MAX_ATTEMPTS 8

#define MAGPIE_TYPE_OUTBOX (magpie_outbox_get_type ())

G_DECLARE_FINAL_TYPE (MagpieOutbox, magpie_outbox, MAGPIE, OUTBOX, GObject)

MagpieOutbox   *magpie_outbox_new                 (MagpieStore         *store,
                                                   const char          *photos_dir);
MagpieStore    *magpie_outbox_get_store           (MagpieOutbox        *self);
GFile          *magpie_outbox_get_photo_file      (MagpieOutbox        *self,
                                                   const char          *sha256,
                                                   const char          *extension);
char           *magpie_outbox_object_key          (const char          *identity,
                                                   const char          *sha256,
                                                   const char          *extension);
gint64          magpie_outbox_backoff_us          (int                  attempts,
                                                   double               jitter);

void            magpie_outbox_import_async        (MagpieOutbox        *self,
                                                   GFile               *source,
                                                   const char          *name,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
void            magpie_outbox_resume_import_async (MagpieOutbox        *self,
                                                   const MagpieStoreRow *row,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
MagpieStoreRow *magpie_outbox_import_finish       (MagpieOutbox        *self,
                                                   GAsyncResult        *result,
                                                   gboolean            *duplicate,
                                                   GError             **error);

void            magpie_outbox_take_async          (MagpieOutbox        *self,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
MagpieStoreRow *magpie_outbox_take_finish         (MagpieOutbox        *self,
                                                   GAsyncResult        *result,
                                                   gint64              *next_due_us,
                                                   GError             **error);
void            magpie_outbox_set_progress        (MagpieOutbox        *self,
                                                   gint64               id,
                                                   gint64               sent,
                                                   gint64               total);
void            magpie_outbox_complete_async      (MagpieOutbox        *self,
                                                   gint64               id,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
void            magpie_outbox_fail_async          (MagpieOutbox        *self,
                                                   gint64               id,
                                                   const char          *reason,
                                                   gboolean             retryable,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
void            magpie_outbox_release_async       (MagpieOutbox        *self,
                                                   gint64               id,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
MagpieStoreRow *magpie_outbox_update_finish       (MagpieOutbox        *self,
                                                   GAsyncResult        *result,
                                                   GError             **error);
void            magpie_outbox_retry_now_async     (MagpieOutbox        *self,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
gboolean        magpie_outbox_retry_now_finish    (MagpieOutbox        *self,
                                                   GAsyncResult        *result,
                                                   GError             **error);

/* Multipart uploads under way (magpie-outbox-multipart.c) */
void            magpie_outbox_get_multipart_async (MagpieOutbox        *self,
                                                   gint64               photo,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
void            magpie_outbox_begin_multipart_async (MagpieOutbox      *self,
                                                   gint64               photo,
                                                   const char          *endpoint,
                                                   const char          *bucket,
                                                   const char          *key,
                                                   const char          *upload_id,
                                                   gint64               size,
                                                   gint64               part_size,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
void            magpie_outbox_list_abandoned_async (MagpieOutbox       *self,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
gpointer        magpie_outbox_multipart_finish    (MagpieOutbox        *self,
                                                   GAsyncResult        *result,
                                                   GError             **error);
void            magpie_outbox_add_part_async      (MagpieOutbox        *self,
                                                   gint64               upload,
                                                   const MagpiePart    *part,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
void            magpie_outbox_forget_multipart_async (MagpieOutbox     *self,
                                                   gint64               upload,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
gboolean        magpie_outbox_multipart_update_finish (MagpieOutbox    *self,
                                                   GAsyncResult        *result,
                                                   GError             **error);

G_END_DECLS
