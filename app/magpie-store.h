/* magpie-store.h - the library's database: one SQLite file, all statements on one thread */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Where a photo is on its way to the server. */
typedef enum {
  MAGPIE_UPLOAD_IMPORTING, /* recorded, not yet copied and hashed */
  MAGPIE_UPLOAD_WAITING,   /* in the outbox, ready once next_attempt has passed */
  MAGPIE_UPLOAD_UPLOADING, /* taken by an uploader */
  MAGPIE_UPLOAD_UPLOADED,  /* the server has it */
  MAGPIE_UPLOAD_FAILED,    /* given up on; last_error says why */
} MagpieUploadState;

typedef struct {
  gint64             id;
  char              *source;      /* URI imported from */
  char              *name;        /* display name at import */
  char              *sha256;      /* NULL while importing */
  char              *extension;
  gint64             size;
  int                width;
  int                height;
  gint64             imported;    /* unix seconds */
  MagpieUploadState  upload;
  int                attempts;
  gint64             next_attempt; /* unix µs */
  gint64             sent;         /* bytes the server confirmed, for resuming */
  char              *last_error;
  GPtrArray         *tags;         /* MagpieTag */
} MagpieStoreRow;

void            magpie_store_row_free (MagpieStoreRow *row);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MagpieStoreRow, magpie_store_row_free)

#define MAGPIE_TYPE_STORE (magpie_store_get_type ())

G_DECLARE_FINAL_TYPE (MagpieStore, magpie_store, MAGPIE, STORE, GObject)

typedef struct sqlite3 sqlite3;

/* Runs on the store's thread with the open database; returns the task's result. */
typedef gpointer (*MagpieStoreFunc) (sqlite3   *db,
                                     gpointer   data,
                                     GError   **error);

MagpieStore *magpie_store_new        (const char          *path);
const char  *magpie_store_get_path   (MagpieStore         *self);
void         magpie_store_run_async  (MagpieStore         *self,
                                      MagpieStoreFunc      func,
                                      gpointer             data,
                                      GDestroyNotify       data_free,
                                      GDestroyNotify       result_free,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data);
gpointer     magpie_store_run_finish (MagpieStore         *self,
                                      GAsyncResult        *result,
                                      GError             **error);
void         magpie_store_sync       (MagpieStore         *self);

/* For MagpieStoreFunc implementations: statements with a plain-words GError. */
gboolean     magpie_store_exec       (sqlite3             *db,
                                      const char          *sql,
                                      GError             **error);
/* Runs @sql with its n_ids ?s bound to gint64 values, to completion. Returns FALSE and sets
 * @error to "@what: <SQLite's message>" when it cannot be prepared or does not finish. */
gboolean     magpie_store_run_ids    (sqlite3             *db,
                                      const char          *sql,
                                      const char          *what,
                                      GError             **error,
                                      guint                n_ids,
                                      ...);
gpointer     magpie_store_fail_transaction (sqlite3       *db,
                                            const char    *what,
                                            GError       **error);
MagpieStoreRow *magpie_store_read_row (sqlite3            *db,
                                       gint64              id,
                                       GError            **error);
GPtrArray      *magpie_store_read_all_rows (sqlite3       *db,
                                            GError       **error);

G_END_DECLS
