/* load-driver.c - virtual users, the arrival clock, the /metrics scraper and the progress line
 *
 * Everything runs on one GMainContext: libsoup 3 sessions are asynchronous and single-threaded,
 * and at the rates two cores can serve the generator's own work (JSON, SigV4 over a
 * precomputed payload hash, SSE parsing) is small beside the server's. Each virtual user holds
 * a reference per request in flight; its GCancellable ends them all when it finishes, fails,
 * times out or the run is interrupted.
 *
 * Open loop: users arrive on the plan's schedule whatever the server does, so a slow server
 * shows up as latency and, past --concurrency users in flight, as "dropped" arrivals, not as a
 * quietly lower arrival rate.
 */
#include "config.h"

#include "load-driver.h"

#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "load-http.h"
#include "mp-sigv4.h"

#define LOAD_TICK_MS            5      /* arrival clock; 200 Hz keeps 1,000/s within a tick */
#define LOAD_SSE_LINE_MAX       (1024 * 1024)  /* photo JSON is ~1 KB; more is not an event */
#define LOAD_SSE_READ           16384
#define LOAD_PROGRESS_TTY_MS    250
#define LOAD_PROGRESS_LOG_MS    5000
#define LOAD_PROGRESS_WINDOW_S  5.0    /* the progress line's p95 covers this much */
#define LOAD_CREDENTIAL_POOL    8      /* identities credentials mode cycles through */
#define LOAD_SETUP_TIMEOUT_S    30

typedef struct _Driver Driver;
typedef struct _VUser VUser;

/* What a virtual user does once a request succeeded; @root is its JSON answer when the step
 * asked for one, else NULL. */
typedef void (*StepNext) (VUser *vu, JsonNode *root);

typedef struct {
  LoadPhoto *photo;
  char      *key;
  double     put_t0;      /* s; when its PutObject started */
  gboolean   registered;  /* POST /v1/photos answered */
  gboolean   tagged;      /* its photo.tagged or photo.failed arrived (or was given up) */
} Upload;

struct _VUser {
  guint          refs;
  Driver        *d;
  guint64        index;
  int            phase;
  double         t0;            /* arrival, s */
  SoupSession   *session;
  GCancellable  *cancellable;
  guint          deadline_id;
  gboolean       finished;

  /* the request in flight (a user makes one at a time), so its answer can be judged and a
   * timeout can name it */
  gboolean       step_active;
  LoadKind       step_kind;
  double         step_t0;
  guint          step_expect[2];  /* the statuses that mean success */
  gboolean       step_json;       /* and the answer must be a JSON object */
  StepNext       step_next;       /* what the user does after a success */

  char          *identity_id;
  char          *secret;
  char          *token;
  char          *access_key_id;
  char          *secret_access_key;
  char          *endpoint;
  char          *region;
  char          *bucket;
  char          *prefix;

  GPtrArray     *uploads;       /* Upload* */
  GHashTable    *by_key;        /* key → Upload* (borrowed) */
  guint          next_upload;
  guint          n_done;        /* registered and tagged */

  GInputStream  *events;
  GString       *line;
  char          *event_type;
  GString       *event_data;
};

struct _Driver {
  const LoadOptions *opt;
  LoadReport        *report;
  GMainLoop         *loop;
  GPtrArray         *sessions;        /* SoupSession*, one per source address */
  SoupSession       *scrape_session;
  GCancellable      *cancellable;     /* setup and scrapes */
  gint64             start_us;
  guint64            arrived;
  guint              active;
  GHashTable        *vusers;          /* VUser* → itself, the ones in flight */
  guint              next_photo;
  gboolean           started;         /* setup done, the clock runs */
  gboolean           arrivals_over;
  gboolean           interrupted;
  gboolean           stopping;        /* quit after the scrape in flight */
  gboolean           scraping;
  guint              tick_id;
  guint              scrape_id;
  guint              progress_id;
  guint              linger_id;
  guint              signal_ids[2];
  guint              setup_timeout_id;
  GError            *setup_error;

  char              *token;           /* digits: one identity's session token */
  GPtrArray         *identities;      /* credentials: GBytes request bodies */
  guint              setup_pending;

  guint              n_ok;
  guint              n_failed;
  guint              n_dropped;
  gboolean           have_scrape;
  LoadScrape         last_scrape;
};

const char *
load_mode_name (LoadMode mode)
{
  switch (mode)
    {
    case LOAD_MODE_PHOTOS:
      return "photos";
    case LOAD_MODE_DIGITS:
      return "digits";
    case LOAD_MODE_CREDENTIALS:
      return "credentials";
    case LOAD_MODE_WATCH:
      return "watch";
    default:
      g_return_val_if_reached ("?");
    }
}

/* Small helpers */

static double
now_s (Driver *d)
{
  return (g_get_monotonic_time () - d->start_us) / (double) G_USEC_PER_SEC;
}

/* Virtual users */

static void vuser_finish (VUser *vu, const char *error_class, const char *detail);
static void maybe_stop (Driver *d);

static VUser *
vuser_ref (VUser *vu)
{
  vu->refs++;
  return vu;
}

static void
upload_free (gpointer data)
{
  Upload *up = data;

  g_free (up->key);
  g_free (up);
}

static void
vuser_unref (VUser *vu)
{
  if (--vu->refs > 0)
    return;
  g_clear_handle_id (&vu->deadline_id, g_source_remove);
  g_clear_object (&vu->cancellable);
  g_free (vu->identity_id);
  g_free (vu->secret);
  g_free (vu->token);
  g_free (vu->access_key_id);
  g_free (vu->secret_access_key);
  g_free (vu->endpoint);
  g_free (vu->region);
  g_free (vu->bucket);
  g_free (vu->prefix);
  g_clear_pointer (&vu->uploads, g_ptr_array_unref);
  g_clear_pointer (&vu->by_key, g_hash_table_unref);
  g_clear_object (&vu->events);
  if (vu->line)
    g_string_free (vu->line, TRUE);
  g_free (vu->event_type);
  if (vu->event_data)
    g_string_free (vu->event_data, TRUE);
  g_free (vu);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VUser, vuser_unref)

static void
vuser_sample (VUser      *vu,
              LoadKind    kind,
              double      t0,
              guint       status,
              const char *error_class,
              const char *detail)
{
  load_report_add (vu->d->report, t0, vu->phase, kind, (now_s (vu->d) - t0) * 1000, status,
                   error_class, detail);
}

static void
step_begin (VUser    *vu,
            LoadKind  kind)
{
  vu->step_active = TRUE;
  vu->step_kind = kind;
  vu->step_t0 = now_s (vu->d);
  vu->step_expect[0] = vu->step_expect[1] = SOUP_STATUS_OK;
  vu->step_json = FALSE;
  vu->step_next = NULL;
}

/* Ends the request in flight: records its sample and, when the answer is not what the step
 * expects (a status of step_expect, a JSON object if step_json), fails the virtual user and
 * returns FALSE. *@out_root gets the JSON answer of a step that wants one. */
static gboolean
step_end (VUser        *vu,
          SoupMessage  *msg,
          GBytes       *body,
          const GError *error,
          JsonNode    **out_root)
{
  LoadKind kind = vu->step_kind;
  guint status = error ? 0 : soup_message_get_status (msg);
  g_autofree char *klass = NULL;
  g_autofree char *detail = NULL;
  g_autofree char *session_class = NULL;

  vu->step_active = FALSE;
  if (error != NULL)
    {
      klass = g_strdup (load_http_error_class (error));
      detail = g_strdup (error->message);
    }
  else if (status != vu->step_expect[0] && status != vu->step_expect[1])
    {
      klass = g_strdup_printf ("http-%u", status);
      detail = load_http_answer_detail (body);
    }
  else if (vu->step_json && load_http_parse_object (body, out_root) == NULL)
    {
      klass = g_strdup ("bad-answer");
      detail = g_strdup ("the answer is not a JSON object");
    }
  vuser_sample (vu, kind, vu->step_t0, status, klass, detail);
  if (klass == NULL)
    return TRUE;
  session_class = g_strdup_printf ("%s/%s", load_kind_name (kind), klass);
  vuser_finish (vu, session_class, detail);
  return FALSE;
}

static void
step_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(VUser) vu = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (object), result,
                                                              &error);
  SoupMessage *msg = soup_session_get_async_result_message (SOUP_SESSION (object), result);
  g_autoptr(JsonNode) root = NULL;

  if (vu->finished)
    return;
  if (step_end (vu, msg, body, error, &root))
    vu->step_next (vu, root);
}

/* Sends @msg as the user's next step of @kind; @next runs when the answer has status @expect
 * (or @expect2) and, with @want_json, is a JSON object. */
static void
step_send (VUser       *vu,
           LoadKind     kind,
           SoupMessage *msg,
           guint        expect,
           guint        expect2,
           gboolean     want_json,
           StepNext     next)
{
  step_begin (vu, kind);
  vu->step_expect[0] = expect;
  vu->step_expect[1] = expect2;
  vu->step_json = want_json;
  vu->step_next = next;
  soup_session_send_and_read_async (vu->session, msg, G_PRIORITY_DEFAULT, vu->cancellable,
                                    step_cb, vuser_ref (vu));
}

/* Tag waits that will not end now, as errors of their own. */
static void
give_up_tags (VUser      *vu,
              const char *error_class,
              const char *detail)
{
  for (guint i = 0; vu->uploads && i < vu->uploads->len; i++)
    {
      Upload *up = vu->uploads->pdata[i];

      if (up->registered && !up->tagged)
        {
          up->tagged = TRUE;
          vuser_sample (vu, LOAD_KIND_TAG, up->put_t0, 0, error_class, detail);
        }
    }
}

static void
vuser_finish (VUser      *vu,
              const char *error_class,
              const char *detail)
{
  Driver *d = vu->d;

  if (vu->finished)
    return;
  vu->finished = TRUE;
  g_cancellable_cancel (vu->cancellable);
  g_clear_handle_id (&vu->deadline_id, g_source_remove);
  if (d->report->session_kind == LOAD_KIND_SESSION)
    load_report_add (d->report, vu->t0, vu->phase, LOAD_KIND_SESSION,
                     (now_s (d) - vu->t0) * 1000, 0, error_class, detail);
  if (error_class == NULL)
    d->n_ok++;
  else
    d->n_failed++;
  d->active--;
  g_hash_table_remove (d->vusers, vu);   /* drops the driver's reference */
  maybe_stop (d);
}

/* Ends a user that has run out of time (or was interrupted): the request in flight and the
 * tag waits are errors of @error_class. */
static void
vuser_abandon (VUser      *vu,
               const char *error_class)
{
  g_autofree char *detail = NULL;
  g_autofree char *session_class = NULL;

  if (vu->step_active)
    {
      detail = g_strdup_printf ("no answer to %s after %.1f s", load_kind_name (vu->step_kind),
                                now_s (vu->d) - vu->step_t0);
      vuser_sample (vu, vu->step_kind, vu->step_t0, 0, error_class, detail);
      session_class = g_strdup_printf ("%s/%s", load_kind_name (vu->step_kind), error_class);
    }
  else
    {
      detail = g_strdup_printf ("no tag after %.1f s", now_s (vu->d) - vu->t0);
      session_class = g_strdup_printf ("tag/%s", error_class);
    }
  give_up_tags (vu, error_class, detail);
  vuser_finish (vu, session_class, detail);
}

static gboolean
deadline_cb (gpointer user_data)
{
  VUser *vu = user_data;

  vu->deadline_id = 0;
  vuser_ref (vu);
  vuser_abandon (vu, "timeout");
  vuser_unref (vu);
  return G_SOURCE_REMOVE;
}

static void
check_done (VUser *vu)
{
  if (!vu->finished && vu->n_done == vu->uploads->len && vu->next_upload == vu->uploads->len)
    vuser_finish (vu, NULL, NULL);
}

static void
upload_settled (VUser  *vu,
                Upload *up)
{
  if (up->registered && up->tagged)
    {
      vu->n_done++;
      check_done (vu);
    }
}

/* SSE: photo.tagged / photo.failed for this user's keys */

static void
dispatch_event (VUser *vu)
{
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *key = NULL;
  gboolean tagged = g_strcmp0 (vu->event_type, "photo.tagged") == 0;
  gboolean failed = g_strcmp0 (vu->event_type, "photo.failed") == 0;
  JsonObject *photo;
  Upload *up;

  if (!tagged && !failed)
    return;
  {
    g_autoptr(GBytes) data = g_bytes_new (vu->event_data->str, vu->event_data->len);

    photo = load_http_parse_object (data, &root);
  }
  key = load_json_dup_string (photo, "key");
  up = key ? g_hash_table_lookup (vu->by_key, key) : NULL;
  if (up == NULL || up->tagged)
    return;
  up->tagged = TRUE;
  if (tagged)
    {
      vuser_sample (vu, LOAD_KIND_TAG, up->put_t0, 0, NULL, NULL);
      upload_settled (vu, up);
    }
  else
    {
      g_autofree char *why = load_json_dup_string (photo, "error");

      vuser_sample (vu, LOAD_KIND_TAG, up->put_t0, 0, "photo-failed", why);
      vuser_finish (vu, "tag/photo-failed", why);
    }
}

/* One line of the stream (without its end of line); a line that is no SSE field is ignored. */
static void
event_line (VUser      *vu,
            const char *line)
{
  const char *value;

  if (line[0] == '\0')
    {
      if (vu->event_data->len > 0 && vu->event_data->str[vu->event_data->len - 1] == '\n')
        g_string_truncate (vu->event_data, vu->event_data->len - 1);
      dispatch_event (vu);
      g_clear_pointer (&vu->event_type, g_free);
      g_string_truncate (vu->event_data, 0);
      return;
    }
  if (line[0] == ':')
    return;
  value = strchr (line, ':');
  value = value ? value + 1 + (value[1] == ' ') : line + strlen (line);
  if (g_str_has_prefix (line, "event:"))
    {
      g_free (vu->event_type);
      vu->event_type = g_strdup (value);
    }
  else if (g_str_has_prefix (line, "data:"))
    {
      g_string_append (vu->event_data, value);
      g_string_append_c (vu->event_data, '\n');
    }
}

static void events_read_cb (GObject *object, GAsyncResult *result, gpointer user_data);

static void
events_read_next (VUser *vu)
{
  g_input_stream_read_bytes_async (vu->events, LOAD_SSE_READ, G_PRIORITY_DEFAULT,
                                   vu->cancellable, events_read_cb, vuser_ref (vu));
}

static void
events_read_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(VUser) vu = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) chunk = g_input_stream_read_bytes_finish (G_INPUT_STREAM (object), result,
                                                              &error);
  const char *data;
  gsize len;

  if (vu->finished)
    return;
  if (chunk == NULL || g_bytes_get_size (chunk) == 0)
    {
      const char *why = error ? error->message : "the server ended the event stream";

      give_up_tags (vu, "events-closed", why);
      vuser_finish (vu, "events/closed", why);
      return;
    }
  data = g_bytes_get_data (chunk, &len);
  for (gsize i = 0; i < len && !vu->finished; i++)
    {
      if (data[i] == '\n')
        {
          if (vu->line->len > 0 && vu->line->str[vu->line->len - 1] == '\r')
            g_string_truncate (vu->line, vu->line->len - 1);
          event_line (vu, vu->line->str);
          g_string_truncate (vu->line, 0);
        }
      else if (vu->line->len >= LOAD_SSE_LINE_MAX)
        {
          give_up_tags (vu, "events-bad", "an event stream line passed 1 MB");
          vuser_finish (vu, "events/bad", "an event stream line passed 1 MB");
          return;
        }
      else
        g_string_append_c (vu->line, data[i]);
    }
  if (!vu->finished)
    events_read_next (vu);
}

/* Photos mode, step by step */

static void start_upload (VUser *vu);

static void
register_done (VUser    *vu,
               JsonNode *root)
{
  Upload *up = vu->uploads->pdata[vu->next_upload - 1];

  up->registered = TRUE;
  if (vu->next_upload < vu->uploads->len)
    start_upload (vu);
  upload_settled (vu, up);
}

static void
put_done (VUser    *vu,
          JsonNode *root)
{
  Upload *up = vu->uploads->pdata[vu->next_upload - 1];
  g_autofree char *url = g_strdup_printf ("%s/v1/photos", vu->d->opt->url);
  g_autoptr(GBytes) body = load_http_json_body ("key", up->key, NULL);
  g_autoptr(SoupMessage) msg = load_http_request_new ("POST", url, vu->token, "application/json",
                                                      body);

  step_send (vu, LOAD_KIND_REGISTER, msg, SOUP_STATUS_CREATED, SOUP_STATUS_OK, FALSE,
             register_done);
}

/* A PutObject that could not be sent at all. */
static void
upload_not_sent (VUser      *vu,
                 const char *error_class,
                 const char *detail)
{
  g_autofree char *session_class = g_strdup_printf ("put/%s", error_class);

  load_report_add (vu->d->report, now_s (vu->d), vu->phase, LOAD_KIND_PUT, 0, 0, error_class,
                   detail);
  vuser_finish (vu, session_class, detail);
}

/* SigV4 PutObject of the next photo to the bucket and prefix the credentials name, as the
 * app's uploader does: the payload hash is the photo's SHA-256, known without reading it
 * again. */
static void
start_upload (VUser *vu)
{
  Upload *up = vu->uploads->pdata[vu->next_upload++];
  g_autoptr(GUri) endpoint = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(MpSigv4Signed) signed_request = NULL;
  g_autofree char *escaped_key = g_uri_escape_string (up->key, "/", FALSE);
  g_autofree char *path = NULL;
  g_autofree char *host = NULL;
  g_autofree char *url = NULL;
  g_autofree char *base = NULL;
  MpSigv4Header headers[2];
  MpSigv4Request request = { 0 };
  MpSigv4SigningParams params = { 0 };

  endpoint = g_uri_parse (vu->endpoint, G_URI_FLAGS_NONE, &error);
  if (endpoint == NULL || g_uri_get_host (endpoint) == NULL)
    {
      upload_not_sent (vu, "bad-endpoint", vu->endpoint);
      return;
    }
  /* <endpoint path>/<bucket>/<key>, one slash between the parts and one in front */
  base = g_strdup (g_uri_get_path (endpoint));
  while (g_str_has_suffix (base, "/"))
    base[strlen (base) - 1] = '\0';
  path = g_strconcat (base[0] == '/' ? "" : "/", base, base[0] ? "/" : "", vu->bucket, "/",
                      escaped_key, NULL);
  host = g_uri_get_port (endpoint) > 0
         ? g_strdup_printf ("%s:%d", g_uri_get_host (endpoint), g_uri_get_port (endpoint))
         : g_strdup (g_uri_get_host (endpoint));
  url = g_strdup_printf ("%s://%s%s", g_uri_get_scheme (endpoint), host, path);

  headers[0] = (MpSigv4Header) { "host", host };
  headers[1] = (MpSigv4Header) { "content-type", up->photo->content_type };
  request.method = "PUT";
  request.path = path;
  request.headers = headers;
  request.n_headers = G_N_ELEMENTS (headers);
  request.payload_hash = up->photo->sha256;
  params.access_key_id = vu->access_key_id;
  params.secret_access_key = vu->secret_access_key;
  params.session_token = vu->token;
  params.region = vu->region;
  params.service = "s3";
  params.now = g_get_real_time () / G_USEC_PER_SEC;
  params.flags = MP_SIGV4_FLAGS_S3;
  signed_request = mp_sigv4_sign (&request, &params, &error);
  msg = signed_request ? soup_message_new ("PUT", url) : NULL;
  if (msg == NULL)
    {
      upload_not_sent (vu, "cannot-sign", error ? error->message : url);
      return;
    }
  for (gsize i = 0; i < signed_request->n_set_headers; i++)
    soup_message_headers_replace (soup_message_get_request_headers (msg),
                                  signed_request->set_headers[i].name,
                                  signed_request->set_headers[i].value);
  soup_message_set_request_body_from_bytes (msg, up->photo->content_type, up->photo->bytes);
  step_send (vu, LOAD_KIND_PUT, msg, SOUP_STATUS_OK, SOUP_STATUS_OK, FALSE, put_done);
  up->put_t0 = vu->step_t0;
}

/* The event stream answered (headers only: the body is the stream). */
static void
events_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(VUser) vu = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) stream = soup_session_send_finish (SOUP_SESSION (object), result,
                                                             &error);
  SoupMessage *msg = soup_session_get_async_result_message (SOUP_SESSION (object), result);
  g_autoptr(GBytes) error_body = NULL;

  if (vu->finished)
    return;
  /* an error answer is small; read it for the detail */
  if (stream != NULL && soup_message_get_status (msg) != SOUP_STATUS_OK)
    error_body = g_input_stream_read_bytes (stream, 4096, NULL, NULL);
  if (!step_end (vu, msg, error_body, error, NULL))
    return;
  vu->events = g_steal_pointer (&stream);
  vu->line = g_string_new (NULL);
  vu->event_data = g_string_new (NULL);
  events_read_next (vu);
  start_upload (vu);
}

static void
credentials_done (VUser    *vu,
                  JsonNode *root)
{
  g_autoptr(SoupMessage) events = NULL;
  g_autofree char *url = NULL;
  JsonObject *o;

  if (vu->d->opt->mode != LOAD_MODE_PHOTOS)
    {
      vuser_finish (vu, NULL, NULL);
      return;
    }
  o = json_node_get_object (root);
  vu->token = load_json_dup_string (o, "session_token");
  vu->access_key_id = load_json_dup_string (o, "access_key_id");
  vu->secret_access_key = load_json_dup_string (o, "secret_access_key");
  vu->endpoint = load_json_dup_string (o, "endpoint");
  vu->region = load_json_dup_string (o, "region");
  vu->bucket = load_json_dup_string (o, "bucket");
  vu->prefix = load_json_dup_string (o, "prefix");
  if (!vu->token || !vu->access_key_id || !vu->secret_access_key || !vu->endpoint ||
      !vu->region || !vu->bucket || !vu->prefix)
    {
      /* the request counted as a success; the session says what was missing */
      vuser_finish (vu, "credentials/bad-answer", "the credentials lack a field");
      return;
    }
  for (guint i = 0; i < vu->uploads->len; i++)
    {
      Upload *up = vu->uploads->pdata[i];

      up->key = g_strdup_printf ("%s%s.%s", vu->prefix, up->photo->sha256, up->photo->extension);
      g_hash_table_replace (vu->by_key, up->key, up);
    }

  /* Subscribe first, from the identity's first event (it has none yet), so no tag can slip
   * between the registration and the subscription. */
  url = g_strdup_printf ("%s/v1/events", vu->d->opt->url);
  events = load_http_request_new ("GET", url, vu->token, NULL, NULL);
  soup_message_headers_replace (soup_message_get_request_headers (events), "Accept",
                                "text/event-stream");
  soup_message_headers_replace (soup_message_get_request_headers (events), "Last-Event-ID", "0");
  step_begin (vu, LOAD_KIND_EVENTS);
  soup_session_send_async (vu->session, events, G_PRIORITY_DEFAULT, vu->cancellable, events_cb,
                           vuser_ref (vu));
}

static void
identity_done (VUser    *vu,
               JsonNode *root)
{
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autofree char *url = NULL;

  vu->identity_id = load_json_dup_string (json_node_get_object (root), "identity_id");
  vu->secret = load_json_dup_string (json_node_get_object (root), "secret");
  if (vu->identity_id == NULL || vu->secret == NULL)
    {
      vuser_finish (vu, "identity/bad-answer", "no identity_id or secret");
      return;
    }
  url = g_strdup_printf ("%s/v1/credentials", vu->d->opt->url);
  body = load_http_json_body ("identity_id", vu->identity_id, "secret", vu->secret, NULL);
  msg = load_http_request_new ("POST", url, NULL, "application/json", body);
  step_send (vu, LOAD_KIND_CREDENTIALS, msg, SOUP_STATUS_OK, SOUP_STATUS_OK, TRUE,
             credentials_done);
}

static void
predict_done (VUser    *vu,
              JsonNode *root)
{
  vuser_finish (vu, NULL, NULL);
}

static void
vuser_start (Driver *d,
             int     phase,
             double  t)
{
  VUser *vu = g_new0 (VUser, 1);
  const LoadOptions *opt = d->opt;
  g_autoptr(SoupMessage) msg = NULL;
  g_autofree char *url = NULL;

  vu->refs = 1;    /* the driver's, in d->vusers */
  vu->d = d;
  vu->index = d->arrived;
  vu->phase = phase;
  vu->t0 = t;
  vu->session = d->sessions->pdata[vu->index % d->sessions->len];
  vu->cancellable = g_cancellable_new ();
  d->active++;
  g_hash_table_add (d->vusers, vu);
  vu->deadline_id = g_timeout_add ((guint) (opt->timeout_s * 1000), deadline_cb, vu);

  switch (opt->mode)
    {
    case LOAD_MODE_PHOTOS:
      vu->uploads = g_ptr_array_new_with_free_func (upload_free);
      vu->by_key = g_hash_table_new (g_str_hash, g_str_equal);
      for (guint i = 0; i < opt->photos_per_user; i++)
        {
          Upload *up = g_new0 (Upload, 1);

          up->photo = opt->photos->pdata[d->next_photo++ % opt->photos->len];
          g_ptr_array_add (vu->uploads, up);
        }
      url = g_strdup_printf ("%s/v1/identities", opt->url);
      msg = load_http_request_new ("POST", url, NULL, NULL, NULL);
      step_send (vu, LOAD_KIND_IDENTITY, msg, SOUP_STATUS_CREATED, SOUP_STATUS_CREATED, TRUE,
                 identity_done);
      break;

    case LOAD_MODE_DIGITS:
      {
        LoadPhoto *photo = opt->photos->pdata[d->next_photo++ % opt->photos->len];

        url = g_strdup_printf ("%s/v1/predict/digit", opt->url);
        msg = load_http_request_new ("POST", url, d->token, photo->content_type, photo->bytes);
        step_send (vu, LOAD_KIND_PREDICT, msg, SOUP_STATUS_OK, SOUP_STATUS_OK, FALSE,
                   predict_done);
      }
      break;

    case LOAD_MODE_CREDENTIALS:
      url = g_strdup_printf ("%s/v1/credentials", opt->url);
      msg = load_http_request_new ("POST", url, NULL, "application/json",
                                   d->identities->pdata[vu->index % d->identities->len]);
      step_send (vu, LOAD_KIND_CREDENTIALS, msg, SOUP_STATUS_OK, SOUP_STATUS_OK, FALSE,
                 credentials_done);
      break;

    default:
      g_assert_not_reached ();
    }
}

/* The clock, the scraper, the progress line */

static void
scrape_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  Driver *d = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (object), result,
                                                              &error);
  SoupMessage *msg = soup_session_get_async_result_message (SOUP_SESSION (object), result);
  LoadScrape scrape = { 0 };

  d->scraping = FALSE;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  scrape.t = now_s (d);
  if (body != NULL && soup_message_get_status (msg) == SOUP_STATUS_OK)
    {
      g_autofree char *text = g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));

      if (load_scrape_parse (text, &scrape))
        {
          load_report_add_scrape (d->report, &scrape);
          d->last_scrape = scrape;
          d->have_scrape = TRUE;
        }
      else
        d->report->scrape_failures++;
    }
  else
    d->report->scrape_failures++;
  if (d->stopping)
    g_main_loop_quit (d->loop);
}

static void
scrape (Driver *d)
{
  g_autofree char *url = g_strdup_printf ("%s/metrics", d->opt->url);
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);

  if (d->scraping)
    return;
  d->scraping = TRUE;
  soup_session_send_and_read_async (d->scrape_session, msg, G_PRIORITY_HIGH, d->cancellable,
                                    scrape_cb, d);
}

static gboolean
scrape_timer_cb (gpointer user_data)
{
  scrape (user_data);
  return G_SOURCE_CONTINUE;
}

static int
cmp_double (gconstpointer a,
            gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
recent_p95 (Driver *d)
{
  g_autoptr(GArray) l = g_array_new (FALSE, FALSE, sizeof (double));
  GArray *samples = d->report->samples;
  double since = now_s (d) - LOAD_PROGRESS_WINDOW_S;

  /* samples are appended as they complete: walk back over the window only */
  for (guint i = samples->len; i > 0 && samples->len - i < 20000; i--)
    {
      const LoadSample *s = &g_array_index (samples, LoadSample, i - 1);

      if (s->t + s->latency_ms / 1000 < since)
        break;
      if (s->kind == d->report->main_kind && s->error == NULL)
        g_array_append_val (l, s->latency_ms);
    }
  g_array_sort (l, cmp_double);
  return load_percentile (l, 0.95);
}

static void
progress (Driver   *d,
          gboolean  last)
{
  const LoadPlan *plan = d->opt->plan;
  double t = now_s (d), frac = MIN (1.0, t / plan->total_s);
  int phase = load_plan_phase_at (plan, t);
  char bar[21];
  g_autoptr(GString) line = g_string_new (NULL);
  double p95 = recent_p95 (d);

  for (int i = 0; i < 20; i++)
    bar[i] = i < (int) (frac * 20) ? '#' : '.';
  bar[20] = '\0';
  g_string_append_printf (line, "[%s] %5.1f/%.0f s %-9s %5.1f/s | vusers %" G_GUINT64_FORMAT
                          " arrived, %u active, %u ok, %u failed, %u dropped", bar, t,
                          plan->total_s, phase >= 0 ? plan->phases[phase].name : "draining",
                          load_plan_rate_at (plan, t), d->arrived, d->active, d->n_ok,
                          d->n_failed, d->n_dropped);
  if (!isnan (p95))
    g_string_append_printf (line, " | p95 %s %.0f ms", load_kind_name (d->report->main_kind),
                            p95);
  if (d->have_scrape && !isnan (d->last_scrape.queue_depth))
    g_string_append_printf (line, " | queue %.0f, workers %.0f", d->last_scrape.queue_depth,
                            d->last_scrape.workers);
  if (d->opt->progress_tty)
    fprintf (stderr, "\r%s\033[K%s", line->str, last ? "\n" : "");
  else
    fprintf (stderr, "%s\n", line->str);
  fflush (stderr);
}

static gboolean
progress_cb (gpointer user_data)
{
  progress (user_data, FALSE);
  return G_SOURCE_CONTINUE;
}

static gboolean
linger_cb (gpointer user_data)
{
  Driver *d = user_data;

  d->linger_id = 0;
  d->stopping = TRUE;
  g_clear_handle_id (&d->scrape_id, g_source_remove);
  if (!d->scraping)
    scrape (d);
  return G_SOURCE_REMOVE;
}

/* After the last arrival and the last user: a final scrape (after the linger), then quit. */
static void
maybe_stop (Driver *d)
{
  if (!d->arrivals_over || d->active > 0 || d->report->elapsed_s > 0)
    return;
  d->report->elapsed_s = MAX (now_s (d), 1e-3);
  g_clear_handle_id (&d->progress_id, g_source_remove);
  progress (d, TRUE);
  if (d->opt->linger_s > 0 && !d->interrupted)
    d->linger_id = g_timeout_add ((guint) (d->opt->linger_s * 1000), linger_cb, d);
  else
    linger_cb (d);
}

static gboolean
tick_cb (gpointer user_data)
{
  Driver *d = user_data;
  const LoadPlan *plan = d->opt->plan;
  double t = now_s (d);
  double due = load_plan_arrivals_by (plan, t);
  int phase = load_plan_phase_at (plan, t);

  if (phase < 0)
    phase = (int) plan->n_phases - 1;
  while ((double) d->arrived + 0.5 <= due)
    {
      if (d->active >= d->opt->concurrency)
        {
          load_report_add (d->report, t, phase, d->report->session_kind, 0, 0, "dropped",
                           "more virtual users in flight than --concurrency allows");
          d->n_dropped++;
          d->arrived++;
          continue;
        }
      vuser_start (d, phase, t);
      d->arrived++;
    }
  if (t < plan->total_s)
    return G_SOURCE_CONTINUE;
  d->tick_id = 0;
  d->arrivals_over = TRUE;
  maybe_stop (d);
  return G_SOURCE_REMOVE;
}

static void
start_clock (Driver *d)
{
  d->started = TRUE;
  d->start_us = g_get_monotonic_time ();
  d->tick_id = g_timeout_add_full (G_PRIORITY_HIGH, LOAD_TICK_MS, tick_cb, d, NULL);
  d->scrape_id = g_timeout_add ((guint) (d->opt->scrape_interval_s * 1000), scrape_timer_cb, d);
  d->progress_id = g_timeout_add (d->opt->progress_tty ? LOAD_PROGRESS_TTY_MS
                                                       : LOAD_PROGRESS_LOG_MS, progress_cb, d);
  scrape (d);
}

static gboolean
interrupt_cb (gpointer user_data)
{
  Driver *d = user_data;
  g_autoptr(GPtrArray) users = NULL;
  GHashTableIter iter;
  gpointer key;

  if (d->interrupted)
    {
      fprintf (stderr, "\nmagpie-load: interrupted twice; leaving without a report\n");
      exit (130);
    }
  d->interrupted = TRUE;
  if (!d->started)
    {
      g_set_error (&d->setup_error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "interrupted");
      g_cancellable_cancel (d->cancellable);
      g_main_loop_quit (d->loop);
      return G_SOURCE_CONTINUE;
    }
  fprintf (stderr, "\nmagpie-load: interrupted; ending the virtual users in flight and "
                   "writing the report (again to leave at once)\n");
  g_clear_handle_id (&d->tick_id, g_source_remove);
  d->arrivals_over = TRUE;
  /* abandoning a user removes it from the table: walk a copy */
  users = g_ptr_array_new ();
  g_hash_table_iter_init (&iter, d->vusers);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (users, key);
  for (guint i = 0; i < users->len; i++)
    {
      VUser *vu = vuser_ref (users->pdata[i]);

      vuser_abandon (vu, "interrupted");
      vuser_unref (vu);
    }
  maybe_stop (d);
  return G_SOURCE_CONTINUE;
}

/* Setup for the modes whose users share an identity */

static void
setup_failed (Driver     *d,
              const char *what,
              guint       status,
              GBytes     *body,
              GError     *error)
{
  g_autofree char *detail = error ? g_strdup (error->message) : load_http_answer_detail (body);

  if (d->setup_error != NULL)
    return;
  if (error != NULL)
    g_set_error (&d->setup_error, G_IO_ERROR, G_IO_ERROR_FAILED,
                 "could not set up against %s: %s: %s", d->opt->url, what, detail);
  else
    g_set_error (&d->setup_error, G_IO_ERROR, G_IO_ERROR_FAILED,
                 "could not set up against %s: %s answered %u%s%s", d->opt->url, what, status,
                 detail ? ": " : "", detail ? detail : "");
  g_cancellable_cancel (d->cancellable);
  g_main_loop_quit (d->loop);
}

static void
setup_one_done (Driver *d)
{
  if (--d->setup_pending == 0 && d->setup_error == NULL)
    {
      g_clear_handle_id (&d->setup_timeout_id, g_source_remove);
      start_clock (d);
    }
}

static void
setup_credentials_cb (GObject      *object,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  Driver *d = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (object), result,
                                                              &error);
  SoupMessage *msg = soup_session_get_async_result_message (SOUP_SESSION (object), result);
  g_autoptr(JsonNode) root = NULL;
  guint status = error ? 0 : soup_message_get_status (msg);
  JsonObject *o = status == SOUP_STATUS_OK ? load_http_parse_object (body, &root) : NULL;

  if (d->setup_error != NULL)
    return;
  if (o == NULL || (d->token = load_json_dup_string (o, "session_token")) == NULL)
    {
      setup_failed (d, "POST /v1/credentials", status, body, error);
      return;
    }
  setup_one_done (d);
}

static void
setup_identity_cb (GObject      *object,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Driver *d = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (object), result,
                                                              &error);
  SoupMessage *msg = soup_session_get_async_result_message (SOUP_SESSION (object), result);
  g_autoptr(JsonNode) root = NULL;
  guint status = error ? 0 : soup_message_get_status (msg);
  JsonObject *o = status == SOUP_STATUS_CREATED ? load_http_parse_object (body, &root) : NULL;
  g_autofree char *id = load_json_dup_string (o, "identity_id");
  g_autofree char *secret = load_json_dup_string (o, "secret");
  g_autoptr(GBytes) creds = NULL;

  if (d->setup_error != NULL)
    return;
  if (id == NULL || secret == NULL)
    {
      setup_failed (d, "POST /v1/identities", status, body, error);
      return;
    }
  creds = load_http_json_body ("identity_id", id, "secret", secret, NULL);
  if (d->opt->mode == LOAD_MODE_CREDENTIALS)
    {
      g_ptr_array_add (d->identities, g_steal_pointer (&creds));
      setup_one_done (d);
    }
  else
    {
      g_autofree char *url = g_strdup_printf ("%s/v1/credentials", d->opt->url);
      g_autoptr(SoupMessage) next = load_http_request_new ("POST", url, NULL, "application/json",
                                                           creds);

      soup_session_send_and_read_async (d->sessions->pdata[0], next, G_PRIORITY_DEFAULT,
                                        d->cancellable, setup_credentials_cb, d);
    }
}

static gboolean
setup_timeout_cb (gpointer user_data)
{
  Driver *d = user_data;

  d->setup_timeout_id = 0;
  g_set_error (&d->setup_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
               "could not set up against %s: no answer in %d s", d->opt->url,
               LOAD_SETUP_TIMEOUT_S);
  g_cancellable_cancel (d->cancellable);
  g_main_loop_quit (d->loop);
  return G_SOURCE_REMOVE;
}

static void
setup (Driver *d)
{
  g_autofree char *url = g_strdup_printf ("%s/v1/identities", d->opt->url);
  guint n = d->opt->mode == LOAD_MODE_CREDENTIALS ? LOAD_CREDENTIAL_POOL : 1;

  if (d->opt->mode == LOAD_MODE_PHOTOS || d->opt->mode == LOAD_MODE_WATCH)
    {
      start_clock (d);
      return;
    }
  d->setup_pending = n;
  d->setup_timeout_id = g_timeout_add_seconds (LOAD_SETUP_TIMEOUT_S, setup_timeout_cb, d);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);

      soup_session_send_and_read_async (d->sessions->pdata[i % d->sessions->len], msg,
                                        G_PRIORITY_DEFAULT, d->cancellable, setup_identity_cb,
                                        d);
    }
}

static SoupSession *
new_session (const LoadOptions *opt,
             guint              address)
{
  g_autoptr(GSocketAddress) local = NULL;
  guint max = 2 * opt->concurrency + 8;   /* every user may hold its event stream and a request */
  g_autofree char *agent = g_strdup_printf ("magpie-load/%s", PACKAGE_VERSION);

  if (address > 0)
    {
      /* 127.0.1.1, 127.0.1.2, ...: all loopback on Linux, one client address each */
      g_autofree char *text = g_strdup_printf ("127.0.1.%u", address);

      g_assert (address <= LOAD_MAX_ADDRESSES);

      local = g_inet_socket_address_new_from_string (text, 0);
    }
  return soup_session_new_with_options ("max-conns", max, "max-conns-per-host", max,
                                        "timeout", (guint) ceil (opt->timeout_s),
                                        "user-agent", agent,
                                        local ? "local-address" : NULL, local, NULL);
}

gboolean
load_driver_run (const LoadOptions  *options,
                 LoadReport         *report,
                 GError            **error)
{
  Driver d = { 0 };
  gboolean ok;

  g_return_val_if_fail (options->concurrency > 0, FALSE);
  g_return_val_if_fail (options->mode == LOAD_MODE_CREDENTIALS ||
                        options->mode == LOAD_MODE_WATCH || options->photos->len > 0, FALSE);

  d.opt = options;
  d.report = report;
  d.loop = g_main_loop_new (NULL, FALSE);
  d.cancellable = g_cancellable_new ();
  d.vusers = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) vuser_unref, NULL);
  d.identities = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  d.sessions = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < MAX (options->n_addresses, 1); i++)
    g_ptr_array_add (d.sessions, new_session (options, options->n_addresses ? i + 1 : 0));
  d.scrape_session = soup_session_new_with_options ("timeout", 5, NULL);
  d.start_us = g_get_monotonic_time ();

  report->concurrency = options->concurrency;
  report->n_addresses = MAX (options->n_addresses, 1);
  switch (options->mode)
    {
    case LOAD_MODE_PHOTOS:
      report->main_kind = LOAD_KIND_TAG;
      report->session_kind = LOAD_KIND_SESSION;
      break;
    case LOAD_MODE_DIGITS:
      report->main_kind = report->session_kind = LOAD_KIND_PREDICT;
      break;
    case LOAD_MODE_CREDENTIALS:
      report->main_kind = report->session_kind = LOAD_KIND_CREDENTIALS;
      break;
    case LOAD_MODE_WATCH:
      /* tags, as /metrics counts them, are what a watcher follows */
      report->main_kind = LOAD_KIND_TAG;
      report->session_kind = LOAD_KIND_SESSION;
      break;
    default:
      g_assert_not_reached ();
    }

  d.signal_ids[0] = g_unix_signal_add (SIGINT, interrupt_cb, &d);
  d.signal_ids[1] = g_unix_signal_add (SIGTERM, interrupt_cb, &d);
  setup (&d);
  g_main_loop_run (d.loop);

  ok = d.setup_error == NULL;
  if (!ok)
    g_propagate_error (error, g_steal_pointer (&d.setup_error));

  /* Leave nothing behind: users (none unless setup failed), then the sources. */
  g_cancellable_cancel (d.cancellable);
  g_hash_table_remove_all (d.vusers);
  for (guint i = 0; i < G_N_ELEMENTS (d.signal_ids); i++)
    g_source_remove (d.signal_ids[i]);
  g_clear_handle_id (&d.tick_id, g_source_remove);
  g_clear_handle_id (&d.scrape_id, g_source_remove);
  g_clear_handle_id (&d.progress_id, g_source_remove);
  g_clear_handle_id (&d.linger_id, g_source_remove);
  g_clear_handle_id (&d.setup_timeout_id, g_source_remove);
  /* callbacks of cancelled requests still hold the driver: let them run before it goes */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_hash_table_unref (d.vusers);
  g_ptr_array_unref (d.identities);
  g_ptr_array_unref (d.sessions);
  g_object_unref (d.scrape_session);
  g_object_unref (d.cancellable);
  g_main_loop_unref (d.loop);
  g_free (d.token);
  return ok;
}
