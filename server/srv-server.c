/* srv-server.c - the magpied process: opens the shared services, binds, routes, stops */
#define G_LOG_DOMAIN "magpied"

#include "config.h"

#include "srv-server.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <string.h>
#include <unistd.h>

#include "srv-api.h"
#include "srv-events.h"
#include "srv-http.h"
#include "srv-predict.h"
#include "srv-reply.h"
#include "srv-s3.h"
#include "srv-workers.h"

/* Connections the kernel queues before magpied accepts them. GSocket's default of 10 overflows
 * when a burst of clients connects at once (magpie-load at 10 new users a second): the kernel
 * then drops handshakes, clients wait for 1 s / 3 s SYN retries, and some see resets. Linux
 * caps this at net.core.somaxconn (4096 here). */
#define SRV_LISTEN_BACKLOG 1024

#define SRV_REQUEST_START_KEY "srv-request-start-us"
#define SRV_REQUEST_REMOTE_KEY "srv-request-remote"

struct _SrvServer {
  SrvContext  ctx;
  SrvConfig  *config;
  SoupServer *soup;
  char       *url;
  gint64      started_us;
};

/* What the REST handlers hold in memory: image bytes for the predict endpoints (the
 * workers' decoding limit), a JSON document anywhere else. S3 bodies are spooled to disk
 * by srv-s3.c and bounded there. */
static gint64
body_limit (const char *path,
            gpointer    user_data)
{
  SrvServer *self = user_data;

  if (!g_str_has_prefix (path, "/v1/predict/"))
    return SRV_HTTP_JSON_BODY_MAX;
  if (self->ctx.workers == NULL)
    return MP_IMAGE_MAX_BYTES_DEFAULT;
  return (gint64) srv_workers_get_limits (self->ctx.workers)->max_bytes;
}

static void
healthz_cb (SoupServer        *soup,
            SoupServerMessage *msg,
            const char        *path,
            GHashTable        *query,
            gpointer           user_data)
{
  SrvServer *self = user_data;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  const char *method = soup_server_message_get_method (msg);

  if (g_strcmp0 (path, "/healthz") != 0)
    {
      srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such endpoint: %s", path);
      return;
    }
  if (method != SOUP_METHOD_GET && method != SOUP_METHOD_HEAD)
    {
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "Allow", "GET, HEAD");
      srv_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method_not_allowed",
                       "%s does not accept %s", path, method);
      return;
    }

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "status");
  json_builder_add_string_value (b, "ok");
  json_builder_set_member_name (b, "service");
  json_builder_add_string_value (b, "magpied");
  json_builder_set_member_name (b, "version");
  json_builder_add_string_value (b, PACKAGE_VERSION);
  json_builder_set_member_name (b, "uptime_seconds");
  json_builder_add_int_value (b, (g_get_monotonic_time () - self->started_us) / G_USEC_PER_SEC);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  srv_reply_json (msg, SOUP_STATUS_OK, root);
}

/* Ready means: every dependency a request needs can be used now: the data directory, the
 * catalog (a PostgreSQL server can go away under a running node) and the store's bucket. */
static void
readyz_cb (SoupServer        *soup,
           SoupServerMessage *msg,
           const char        *path,
           GHashTable        *query,
           gpointer           user_data)
{
  SrvServer *self = user_data;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  const char *method = soup_server_message_get_method (msg);

  if (g_strcmp0 (path, "/readyz") != 0)
    {
      srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such endpoint: %s", path);
      return;
    }
  if (method != SOUP_METHOD_GET && method != SOUP_METHOD_HEAD)
    {
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "Allow", "GET, HEAD");
      srv_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method_not_allowed",
                       "%s does not accept %s", path, method);
      return;
    }
  if (g_access (self->config->data_dir, W_OK | X_OK) != 0)
    {
      int saved_errno = errno;

      srv_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "not_ready",
                       "data directory %s is not writable: %s",
                       self->config->data_dir, g_strerror (saved_errno));
      return;
    }

  {
    g_autoptr(GError) error = NULL;

    if (srv_db_last_event_id (self->ctx.db, &error) < 0)
      {
        srv_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "not_ready",
                         "catalog: %s", error->message);
        return;
      }
    if (!srv_store_ping (self->ctx.store, self->config->bucket, &error))
      {
        srv_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "not_ready",
                         "object store: %s", error->message);
        return;
      }
  }

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "status");
  json_builder_add_string_value (b, "ready");
  json_builder_set_member_name (b, "checks");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "data_dir");
  json_builder_add_string_value (b, "ok");
  json_builder_set_member_name (b, "catalog");
  json_builder_add_string_value (b, srv_db_backend_name (self->ctx.db));
  json_builder_set_member_name (b, "role");
  json_builder_add_string_value (b, srv_role_to_string (self->config->role));
  json_builder_set_member_name (b, "store");
  json_builder_add_string_value (b, "ok");
  json_builder_end_object (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  srv_reply_json (msg, SOUP_STATUS_OK, root);
}

static void
metrics_cb (SoupServer        *soup,
            SoupServerMessage *msg,
            const char        *path,
            GHashTable        *query,
            gpointer           user_data)
{
  SrvServer *self = user_data;
  char *text;

  if (g_strcmp0 (path, "/metrics") != 0)
    {
      srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such endpoint: %s", path);
      return;
    }
  if (!srv_http_check_method (msg, "GET, HEAD"))
    return;
  text = srv_metrics_render (self->ctx.metrics);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, "text/plain; version=0.0.4; charset=utf-8",
                                    SOUP_MEMORY_TAKE, text, strlen (text));
}

/* Gauges that are cheap to read at scrape time. */
static void
collect_core (SrvMetrics *metrics,
              gpointer    user_data)
{
  SrvServer *self = user_data;
  SrvStoreUsage usage = { 0 };
  SrvQueueStats stats = { 0 };
  g_autoptr(GError) error = NULL;

  srv_metrics_set (metrics, "magpied_uptime_seconds", NULL,
                   (g_get_monotonic_time () - self->started_us) / (double) G_USEC_PER_SEC);
  /* A remote store keeps no counters we could read at scrape time. */
  if (strcmp (srv_store_backend_name (self->ctx.store), "local") == 0)
    {
      srv_store_usage (self->ctx.store, &usage);
      srv_metrics_set (metrics, "magpied_store_objects", NULL, (double) usage.objects);
      srv_metrics_set (metrics, "magpied_store_bytes", NULL, (double) usage.bytes);
    }
  if (srv_db_queue_stats (self->ctx.db, &stats, &error))
    {
      srv_metrics_set (metrics, "magpied_queue_depth", NULL, (double) stats.queued);
      srv_metrics_set (metrics, "magpied_queue_leased", NULL, (double) stats.leased);
    }
}

static void
declare_core_metrics (SrvMetrics *m)
{
  srv_metrics_declare (m, "magpied_http_requests_total", SRV_METRIC_COUNTER,
                       "HTTP requests answered, by API and status code", NULL, 0);
  srv_metrics_declare (m, "magpied_http_request_duration_seconds", SRV_METRIC_HISTOGRAM,
                       "Time from request start to response sent, by API",
                       srv_metrics_latency_bounds, srv_metrics_latency_n_bounds);
  srv_metrics_declare (m, "magpied_uptime_seconds", SRV_METRIC_GAUGE,
                       "Seconds since this process started", NULL, 0);
  srv_metrics_declare (m, "magpied_store_objects", SRV_METRIC_GAUGE,
                       "Objects in the embedded store", NULL, 0);
  srv_metrics_declare (m, "magpied_store_bytes", SRV_METRIC_GAUGE,
                       "Bytes of object data in the embedded store", NULL, 0);
  srv_metrics_declare (m, "magpied_queue_depth", SRV_METRIC_GAUGE,
                       "Tagging jobs waiting for a worker", NULL, 0);
  srv_metrics_declare (m, "magpied_queue_leased", SRV_METRIC_GAUGE,
                       "Tagging jobs a worker holds right now", NULL, 0);
}

/* Which API a path belongs to, for metric labels: a handful of values, never the raw path
 * (object keys and photo ids would make one series per request). */
static const char *
api_of_path (const char *path)
{
  if (g_str_has_prefix (path, "/v1/"))
    return "rest";
  if (strcmp (path, "/healthz") == 0 || strcmp (path, "/readyz") == 0)
    return "health";
  if (strcmp (path, "/metrics") == 0)
    return "metrics";
  return "s3";
}

static void
request_started_cb (SoupServer        *soup,
                    SoupServerMessage *msg,
                    gpointer           user_data)
{
  gint64 *start = g_new (gint64, 1);

  *start = g_get_monotonic_time ();
  g_object_set_data_full (G_OBJECT (msg), SRV_REQUEST_START_KEY, start, g_free);
  /* Asked now: once a client has hung up, soup has no connection left to ask. */
  g_object_set_data_full (G_OBJECT (msg), SRV_REQUEST_REMOTE_KEY,
                          g_strdup (soup_server_message_get_remote_host (msg)), g_free);
}

static void
request_finished_cb (SoupServer        *soup,
                     SoupServerMessage *msg,
                     gpointer           user_data)
{
  const gint64 *start = g_object_get_data (G_OBJECT (msg), SRV_REQUEST_START_KEY);
  g_autofree char *status = g_strdup_printf ("%u", soup_server_message_get_status (msg));
  g_autofree char *duration = NULL;
  GUri *uri = soup_server_message_get_uri (msg);
  const char *remote = g_object_get_data (G_OBJECT (msg), SRV_REQUEST_REMOTE_KEY);
  gint64 elapsed_us = start ? g_get_monotonic_time () - *start : 0;
  SrvServer *self = user_data;
  /* soup answers 400 itself, without a URI, to a request it cannot parse (no Host, say). */
  const char *path = uri ? g_uri_get_path (uri) : "-";
  const char *api = uri ? api_of_path (path) : "invalid";
  g_autofree char *labels = srv_metrics_labels ("api", api, "code", status, NULL);
  g_autofree char *api_label = srv_metrics_labels ("api", api, NULL);

  srv_metrics_add (self->ctx.metrics, "magpied_http_requests_total", labels, 1);
  srv_metrics_observe (self->ctx.metrics, "magpied_http_request_duration_seconds", api_label,
                       elapsed_us / (double) G_USEC_PER_SEC);
  duration = g_strdup_printf ("%.3f", elapsed_us / 1000.0);
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO,
                    "METHOD", soup_server_message_get_method (msg),
                    "PATH", path,
                    "STATUS", status,
                    "DURATION_MS", duration,
                    "REMOTE", remote ? remote : "-",
                    "MESSAGE", "request");
}

static void
worker_only_cb (SoupServer        *soup,
                SoupServerMessage *msg,
                const char        *path,
                GHashTable        *query,
                gpointer           user_data)
{
  srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found",
                   "%s: this magpied runs with --role=worker and serves only /healthz, /readyz "
                   "and /metrics; send API requests to an api node", path);
}

static void
no_s3_cb (SoupServer        *soup,
          SoupServerMessage *msg,
          const char        *path,
          GHashTable        *query,
          gpointer           user_data)
{
  SrvServer *self = user_data;

  srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found",
                   "%s: this magpied keeps photos in the remote store at %s; send S3 requests "
                   "there (POST /v1/credentials names it)", path,
                   self->config->s3_public_endpoint ? self->config->s3_public_endpoint
                                                    : self->config->s3_endpoint);
}

static char *
url_for_listener (SoupServer *soup)
{
  GSList *listeners = soup_server_get_listeners (soup);
  g_autoptr(GSocketAddress) address = NULL;
  g_autofree char *host = NULL;
  GInetAddress *inet;
  guint16 port;

  g_return_val_if_fail (listeners != NULL, NULL);
  address = g_socket_get_local_address (listeners->data, NULL);
  g_slist_free (listeners);
  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (address), NULL);

  inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address));
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
  if (g_inet_address_get_is_any (inet))
    host = g_strdup ("127.0.0.1");
  else
    host = g_inet_address_to_string (inet);

  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6 && !g_inet_address_get_is_any (inet))
    return g_strdup_printf ("http://[%s]:%u", host, port);
  return g_strdup_printf ("http://%s:%u", host, port);
}

/* A listening TCP socket on @address with SRV_LISTEN_BACKLOG (soup_server_listen() keeps
 * GSocket's default). */
static GSocket *
listen_socket (GSocketAddress  *address,
               GError         **error)
{
  g_autoptr(GSocket) socket = g_socket_new (g_socket_address_get_family (address),
                                            G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);

  if (socket == NULL)
    return NULL;
  g_socket_set_listen_backlog (socket, SRV_LISTEN_BACKLOG);
  if (!g_socket_bind (socket, address, TRUE, error) || !g_socket_listen (socket, error))
    return NULL;
  return g_steal_pointer (&socket);
}

#define SRV_KEYRING_SETTING "token-keyring"

/* The keyring from the shared catalog; the first node to start writes a fresh one there. */
static gboolean
load_shared_keyring (SrvKeyring *keyring,
                     SrvDb      *db,
                     GError    **error)
{
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autoptr(SrvKeyring) fresh = srv_keyring_new ();
  g_autofree char *proposal = NULL;
  g_autofree char *stored = NULL;
  gboolean ok;

  srv_keyring_ensure_current (fresh, now);
  proposal = srv_keyring_to_text (fresh);
  stored = srv_db_setting_once (db, SRV_KEYRING_SETTING, proposal, error);
  memset (proposal, 0, strlen (proposal));
  if (stored == NULL)
    {
      g_prefix_error (error, "cannot read the token keyring from the catalog: ");
      return FALSE;
    }
  ok = srv_keyring_load_text (keyring, stored, "the catalog's token keyring", now, error);
  memset (stored, 0, strlen (stored));
  if (ok && srv_keyring_current_id (keyring) == 0)
    {
      g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_KEYRING,
                   "the catalog's token keyring has no signing key");
      return FALSE;
    }
  return ok;
}

/* Creates the data directory, binds the listener and installs the routes. Returns NULL and
 * sets @error when the directory cannot be made or the address cannot be bound. */
SrvServer *
srv_server_new (const SrvConfig *config,
                GError         **error)
{
  g_autoptr(SrvServer) self = g_new0 (SrvServer, 1);
  g_autoptr(GInetAddress) inet = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocket) listener = NULL;
  g_autofree char *keyring_path = NULL;
  g_autofree char *catalog_path = NULL;
  g_autofree char *store_dir = NULL;
  const char *buckets[2] = { config->bucket, NULL };

  self->config = srv_config_copy (config);
  self->started_us = g_get_monotonic_time ();
  self->ctx.config = self->config;
  self->ctx.main_context = g_main_context_ref_thread_default ();

  if (g_mkdir_with_parents (config->data_dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot create data directory %s: %s",
                   config->data_dir, g_strerror (saved_errno));
      return NULL;
    }

  catalog_path = config->database ? g_strdup (config->database)
                                  : g_build_filename (config->data_dir, "catalog.db", NULL);
  self->ctx.db = srv_db_open (catalog_path, error);
  if (self->ctx.db == NULL)
    {
      g_autofree char *shown = srv_db_location_for_display (catalog_path);

      g_prefix_error (error, "cannot open the catalog %s: ", shown);
      return NULL;
    }

  self->ctx.keyring = srv_keyring_new ();
  if (srv_db_is_shared (self->ctx.db))
    {
      /* Every node verifies every other node's tokens: they share the catalog's keyring. */
      if (!load_shared_keyring (self->ctx.keyring, self->ctx.db, error))
        return NULL;
    }
  else
    {
      keyring_path = g_build_filename (config->data_dir, "keyring", NULL);
      if (!srv_keyring_load (self->ctx.keyring, keyring_path,
                             g_get_real_time () / G_USEC_PER_SEC, error))
        return NULL;
    }

  store_dir = g_build_filename (config->data_dir, "store", NULL);
  if (config->s3_endpoint != NULL)
    {
      SrvStoreOptions remote = {
        .backend = "s3", .endpoint = config->s3_endpoint,
        .region = config->s3_region ? config->s3_region : config->region,
        .access_key_id = config->s3_access_key, .secret_access_key = config->s3_secret_key,
        .virtual_hosted = !config->s3_path_style,
      };

      self->ctx.store = srv_store_open (store_dir, buckets, &remote, error);
    }
  else
    self->ctx.store = srv_store_open (store_dir, buckets, NULL, error);
  if (self->ctx.store == NULL)
    {
      g_prefix_error (error, "cannot open the object store %s: ",
                      config->s3_endpoint ? config->s3_endpoint : store_dir);
      return NULL;
    }

  self->ctx.metrics = srv_metrics_new ();
  declare_core_metrics (self->ctx.metrics);
  srv_metrics_add_collector (self->ctx.metrics, collect_core, self);
  self->ctx.blocking = srv_http_pool_new ();

  /* raw-paths: S3 signs the path as sent and keys may hold %2F, so soup must not decode it. */
  self->soup = soup_server_new ("server-header", "magpied/" PACKAGE_VERSION " ",
                                "raw-paths", TRUE, NULL);
  self->ctx.soup = self->soup;
  srv_http_bound_bodies (self->soup, body_limit, self);
  soup_server_add_handler (self->soup, "/healthz", healthz_cb, self, NULL);
  soup_server_add_handler (self->soup, "/readyz", readyz_cb, self, NULL);
  soup_server_add_handler (self->soup, "/metrics", metrics_cb, self, NULL);
  /* The workers come first: they load the models the predict endpoints serve. */
  if (!srv_workers_start (&self->ctx, config->role != SRV_ROLE_API, error))
    return NULL;
  if (config->role == SRV_ROLE_WORKER)
    /* Everything else is not here, and says so in the API's own error shape. */
    soup_server_add_handler (self->soup, NULL, worker_only_cb, self, NULL);
  else
    {
      srv_predict_register (&self->ctx);
      if (!srv_api_start (&self->ctx, error))
        return NULL;
      srv_events_start (&self->ctx);
      /* With a remote store, clients talk S3 to it directly; we serve no S3 of our own. */
      if (config->s3_endpoint == NULL)
        {
          self->ctx.s3 = srv_s3_start (&self->ctx, error);
          if (self->ctx.s3 == NULL)
            return NULL;
        }
      else
        soup_server_add_handler (self->soup, NULL, no_s3_cb, self, NULL);
    }
  g_signal_connect (self->soup, "request-started", G_CALLBACK (request_started_cb), self);
  g_signal_connect (self->soup, "request-finished", G_CALLBACK (request_finished_cb), self);

  inet = g_inet_address_new_from_string (config->listen_host);
  g_assert (inet != NULL);  /* srv_config_parse_listen() accepted only IP addresses */
  address = g_inet_socket_address_new (inet, config->listen_port);
  listener = listen_socket (address, error);
  if (listener == NULL || !soup_server_listen_socket (self->soup, listener, 0, error))
    {
      g_prefix_error (error, "cannot listen on %s: ", config->listen);
      return NULL;
    }

  self->url = url_for_listener (self->soup);
  self->ctx.url = srv_server_get_url (self);
  return g_steal_pointer (&self);
}

const char *
srv_server_get_url (SrvServer *self)
{
  return self->config->public_url ? self->config->public_url : self->url;
}

/* Stops accepting connections and drops the open ones; safe to call twice. */
void
srv_server_shutdown (SrvServer *self)
{
  srv_events_stop (&self->ctx);
  if (self->soup)
    soup_server_disconnect (self->soup);
}

void
srv_server_free (SrvServer *self)
{
  if (self == NULL)
    return;
  srv_server_shutdown (self);
  /* Handlers still in the pool finish (their replies go nowhere); then nothing uses the
   * services any more and they close in the reverse order of opening. */
  if (self->ctx.blocking)
    g_thread_pool_free (self->ctx.blocking, FALSE, TRUE);
  srv_workers_stop (&self->ctx);
  srv_api_stop (&self->ctx);
  g_clear_object (&self->soup);
  g_clear_pointer (&self->ctx.s3, srv_s3_stop);
  g_clear_pointer (&self->ctx.metrics, srv_metrics_free);
  g_clear_pointer (&self->ctx.store, srv_store_close);
  g_clear_pointer (&self->ctx.db, srv_db_close);
  g_clear_pointer (&self->ctx.keyring, srv_keyring_free);
  g_clear_pointer (&self->ctx.main_context, g_main_context_unref);
  g_free (self->url);
  srv_config_free (self->config);
  g_free (self);
}
