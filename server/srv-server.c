/* srv-server.c - the magpied HTTP listener: health and readiness, access log, lifetime */
#define G_LOG_DOMAIN "magpied"

#include "config.h"

#include "srv-server.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <unistd.h>

#include "srv-reply.h"

#define SRV_REQUEST_START_KEY "srv-request-start-us"

struct _SrvServer {
  SrvConfig  *config;
  SoupServer *soup;
  char       *url;
  gint64      started_us;
};

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

/* Ready means: every dependency a request needs can be used now. So far that is the data
 * directory; the catalog and the store join the list as they arrive. */
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

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "status");
  json_builder_add_string_value (b, "ready");
  json_builder_set_member_name (b, "checks");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "data_dir");
  json_builder_add_string_value (b, "ok");
  json_builder_end_object (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  srv_reply_json (msg, SOUP_STATUS_OK, root);
}

static void
not_found_cb (SoupServer        *soup,
              SoupServerMessage *msg,
              const char        *path,
              GHashTable        *query,
              gpointer           user_data)
{
  srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such endpoint: %s", path);
}

static void
request_started_cb (SoupServer        *soup,
                    SoupServerMessage *msg,
                    gpointer           user_data)
{
  gint64 *start = g_new (gint64, 1);

  *start = g_get_monotonic_time ();
  g_object_set_data_full (G_OBJECT (msg), SRV_REQUEST_START_KEY, start, g_free);
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
  const char *remote = soup_server_message_get_remote_host (msg);

  duration = g_strdup_printf ("%.3f", start ? (g_get_monotonic_time () - *start) / 1000.0 : 0.0);
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO,
                    "METHOD", soup_server_message_get_method (msg),
                    "PATH", g_uri_get_path (uri),
                    "STATUS", status,
                    "DURATION_MS", duration,
                    "REMOTE", remote ? remote : "-",
                    "MESSAGE", "request");
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

/* Creates the data directory, binds the listener and installs the routes. Returns NULL and
 * sets @error when the directory cannot be made or the address cannot be bound. */
SrvServer *
srv_server_new (const SrvConfig *config,
                GError         **error)
{
  g_autoptr(SrvServer) self = g_new0 (SrvServer, 1);
  g_autoptr(GInetAddress) inet = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  self->config = g_new0 (SrvConfig, 1);
  self->config->listen = g_strdup (config->listen);
  self->config->listen_host = g_strdup (config->listen_host);
  self->config->listen_port = config->listen_port;
  self->config->data_dir = g_strdup (config->data_dir);
  self->config->config_file = g_strdup (config->config_file);
  self->config->public_url = g_strdup (config->public_url);
  self->config->log_format = config->log_format;
  self->started_us = g_get_monotonic_time ();

  if (g_mkdir_with_parents (config->data_dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot create data directory %s: %s",
                   config->data_dir, g_strerror (saved_errno));
      return NULL;
    }

  self->soup = soup_server_new ("server-header", "magpied/" PACKAGE_VERSION " ", NULL);
  soup_server_add_handler (self->soup, "/healthz", healthz_cb, self, NULL);
  soup_server_add_handler (self->soup, "/readyz", readyz_cb, self, NULL);
  soup_server_add_handler (self->soup, NULL, not_found_cb, self, NULL);
  g_signal_connect (self->soup, "request-started", G_CALLBACK (request_started_cb), self);
  g_signal_connect (self->soup, "request-finished", G_CALLBACK (request_finished_cb), self);

  inet = g_inet_address_new_from_string (config->listen_host);
  g_assert (inet != NULL);  /* srv_config_parse_listen() accepted only IP addresses */
  address = g_inet_socket_address_new (inet, config->listen_port);
  if (!soup_server_listen (self->soup, address, 0, error))
    {
      g_prefix_error (error, "cannot listen on %s: ", config->listen);
      return NULL;
    }

  self->url = url_for_listener (self->soup);
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
  if (self->soup)
    soup_server_disconnect (self->soup);
}

void
srv_server_free (SrvServer *self)
{
  if (self == NULL)
    return;
  srv_server_shutdown (self);
  g_clear_object (&self->soup);
  g_free (self->url);
  srv_config_free (self->config);
  g_free (self);
}
