/* magpie-connection.c - whether the magpied server can be reached, checked in the background
 *
 * The check is GET <server-url>/healthz: a 200 whose JSON names the service "magpied" means
 * online. It runs when the URL changes, every check-interval seconds while online, and while
 * the server cannot be reached again after 1, 2, 4 s... (at most MAGPIE_CONNECTION_RETRY_MAX_S),
 * so a server that comes back is noticed within seconds. GNetworkMonitor says when to look at
 * once (the network changed) and whether a failed check means "offline" (no network at all)
 * rather than "server unreachable". "Work Offline" stops every check: nothing is sent.
 */
#define G_LOG_DOMAIN "magpie-connection"

#include "config.h"

#include "magpie-connection.h"

#include <glib/gi18n.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <string.h>

#include "magpie-client-error.h"
#include "magpie-enums.h"

#define MAGPIE_CONNECTION_DEFAULT_INTERVAL_S 15
/* The longest wait between checks of a server that cannot be reached: people expect photos to
 * start moving within seconds of the server's return, and /healthz costs the server nothing. */
#define MAGPIE_CONNECTION_RETRY_MAX_S 5
/* Shorter than the check interval, so a server that accepts but never answers is reported
 * before the next check would start. */
#define MAGPIE_CONNECTION_TIMEOUT_S 10

struct _MagpieConnection {
  GObject                parent_instance;

  SoupSession           *session;
  GNetworkMonitor       *monitor;
  GCancellable          *check_cancellable;
  char                  *server_url;
  char                  *server_version;
  char                  *error_message;
  MagpieConnectionState  state;
  guint                  check_interval;
  guint                  timeout_id;
  guint                  n_failures;    /* checks failed in a row, for the retry backoff */
  gboolean               work_offline;
};

G_DEFINE_FINAL_TYPE (MagpieConnection, magpie_connection, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_SERVER_URL,
  PROP_STATE,
  PROP_SERVER_VERSION,
  PROP_ERROR_MESSAGE,
  PROP_CHECK_INTERVAL,
  PROP_WORK_OFFLINE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void magpie_connection_start_check (MagpieConnection *self);
static void schedule_check                (MagpieConnection *self,
                                           guint             delay_ms);

/* Accepts absolute http:// and https:// URLs with a host; a path is allowed for servers
 * behind a reverse proxy. Returns FALSE and sets @error, in words for people, otherwise. */
gboolean
magpie_connection_check_url (const char  *url,
                             GError     **error)
{
  g_autoptr(GUri) uri = NULL;
  const char *scheme;
  const char *host;

  if (url == NULL || *url == '\0')
    {
      g_set_error_literal (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_INVALID_URL,
                           _("The server address is empty"));
      return FALSE;
    }

  uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  if (uri == NULL)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_INVALID_URL,
                   _("“%s” is not a valid web address"), url);
      return FALSE;
    }

  scheme = g_uri_get_scheme (uri);
  if (g_ascii_strcasecmp (scheme, "http") != 0 && g_ascii_strcasecmp (scheme, "https") != 0)
    {
      g_set_error_literal (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_INVALID_URL,
                           _("The server address must start with http:// or https://"));
      return FALSE;
    }

  host = g_uri_get_host (uri);
  if (host == NULL || *host == '\0')
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_INVALID_URL,
                   _("“%s” has no server name"), url);
      return FALSE;
    }

  if (g_uri_get_query (uri) != NULL || g_uri_get_fragment (uri) != NULL)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_INVALID_URL,
                   _("“%s” must not contain “?” or “#”"), url);
      return FALSE;
    }

  return TRUE;
}

/* <server-url>/healthz, whether or not the server URL ends in a slash. */
static char *
health_url (const char *server_url)
{
  gsize len = strlen (server_url);

  while (len > 0 && server_url[len - 1] == '/')
    len--;
  return g_strdup_printf ("%.*s/healthz", (int) len, server_url);
}

static void
probe_read_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  SoupMessage *msg = g_task_get_task_data (task);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  JsonObject *object_node;
  JsonNode *root;
  const char *data;
  gsize len;
  guint status;

  body = soup_session_send_and_read_finish (SOUP_SESSION (object), result, &error);
  if (body == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  status = soup_message_get_status (msg);
  if (status != SOUP_STATUS_OK)
    {
      g_task_return_new_error (task, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                               _("The server answered “%u %s”"), status,
                               soup_message_get_reason_phrase (msg));
      return;
    }

  data = g_bytes_get_data (body, &len);
  if (!json_parser_load_from_data (parser, data, len, NULL) ||
      (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root) ||
      (object_node = json_node_get_object (root)) == NULL ||
      g_strcmp0 (json_object_get_string_member_with_default (object_node, "service", NULL),
                 "magpied") != 0 ||
      g_strcmp0 (json_object_get_string_member_with_default (object_node, "status", NULL),
                 "ok") != 0)
    {
      g_task_return_new_error (task, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                               _("The address answers, but not as a Magpie server"));
      return;
    }

  g_task_return_pointer (task,
                         g_strdup (json_object_get_string_member_with_default (object_node,
                                                                               "version", "")),
                         g_free);
}

/* Asks the server for its health; finishes with its version, or an error when it cannot be
 * reached or is not magpied. */
static void
probe_async (SoupSession         *session,
             const char          *server_url,
             GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autofree char *url = health_url (server_url);
  g_autoptr(SoupMessage) msg = NULL;

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, probe_async);

  msg = soup_message_new (SOUP_METHOD_GET, url);
  if (msg == NULL)
    {
      g_task_return_new_error (task, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_INVALID_URL,
                               _("“%s” is not a valid web address"), server_url);
      return;
    }
  soup_message_headers_replace (soup_message_get_request_headers (msg),
                                "Accept", "application/json");
  g_task_set_task_data (task, g_object_ref (msg), g_object_unref);
  soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, cancellable,
                                    probe_read_cb, g_steal_pointer (&task));
}

static char *
probe_finish (GAsyncResult  *result,
              GError       **error)
{
  g_assert (g_task_get_source_tag (G_TASK (result)) == probe_async);

  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
set_result (MagpieConnection      *self,
            MagpieConnectionState  state,
            const char            *version,
            const char            *error_message)
{
  g_object_freeze_notify (G_OBJECT (self));

  if (g_strcmp0 (self->server_version, version) != 0)
    {
      g_free (self->server_version);
      self->server_version = g_strdup (version);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SERVER_VERSION]);
    }

  if (g_strcmp0 (self->error_message, error_message) != 0)
    {
      g_free (self->error_message);
      self->error_message = g_strdup (error_message);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ERROR_MESSAGE]);
    }

  if (self->state != state)
    {
      self->state = state;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
    }

  g_object_thaw_notify (G_OBJECT (self));
}

/* The wait before the next check: the interval while online; after failures 1, 2, 4 s... up
 * to MAGPIE_CONNECTION_RETRY_MAX_S (never more than the interval), spread over its upper half
 * so that many clients of a restarted server do not come back in step. */
static guint
next_check_delay_ms (MagpieConnection *self)
{
  guint delay_ms;

  if (self->n_failures == 0)
    return self->check_interval * 1000;
  delay_ms = 1000u << MIN (self->n_failures - 1, 8);
  delay_ms = MIN (delay_ms, MIN (self->check_interval, MAGPIE_CONNECTION_RETRY_MAX_S) * 1000);
  return delay_ms / 2 + g_random_int_range (0, delay_ms / 2 + 1);
}

static void
check_cb (GObject      *object,
          GAsyncResult *result,
          gpointer      user_data)
{
  MagpieConnection *self;
  g_autoptr(GError) error = NULL;
  g_autofree char *version = NULL;

  version = probe_finish (result, &error);
  /* Cancelled means superseded by a newer check or disposed: @user_data may be gone. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  self = MAGPIE_CONNECTION (user_data);
  g_clear_object (&self->check_cancellable);

  if (version == NULL)
    {
      self->n_failures = MIN (self->n_failures + 1, 16);
      g_debug ("%s is unreachable: %s", self->server_url, error->message);
      if (!g_network_monitor_get_network_available (self->monitor))
        set_result (self, MAGPIE_CONNECTION_STATE_OFFLINE, NULL, _("No network connection"));
      else
        set_result (self, MAGPIE_CONNECTION_STATE_UNREACHABLE, NULL, error->message);
    }
  else
    {
      self->n_failures = 0;
      set_result (self, MAGPIE_CONNECTION_STATE_ONLINE, version, NULL);
    }
  schedule_check (self, next_check_delay_ms (self));
}

static void
magpie_connection_start_check (MagpieConnection *self)
{
  g_cancellable_cancel (self->check_cancellable);
  g_clear_object (&self->check_cancellable);
  g_clear_handle_id (&self->timeout_id, g_source_remove);

  if (self->server_url == NULL || self->work_offline)
    return;

  self->check_cancellable = g_cancellable_new ();
  probe_async (self->session, self->server_url, self->check_cancellable, check_cb, self);
}

static gboolean
recheck_cb (gpointer user_data)
{
  MagpieConnection *self = user_data;

  self->timeout_id = 0;
  magpie_connection_start_check (self);
  return G_SOURCE_REMOVE;
}

/* One check at a time: the next is scheduled when the last has finished, so a slow server
 * keeps its check instead of having it cancelled by the next. */
static void
schedule_check (MagpieConnection *self,
                guint             delay_ms)
{
  g_clear_handle_id (&self->timeout_id, g_source_remove);
  if (self->server_url != NULL && !self->work_offline)
    self->timeout_id = g_timeout_add (delay_ms, recheck_cb, self);
}

/* Checks now, without waiting for the next periodic check (and, after failures, without the
 * backoff): for when something suggests the server has gone or come back. */
void
magpie_connection_refresh (MagpieConnection *self)
{
  g_return_if_fail (MAGPIE_IS_CONNECTION (self));

  self->n_failures = 0;
  magpie_connection_start_check (self);
}

/* The network came or went (or changed its routes): what was known may no longer hold. A server
 * on this computer stays reachable without a network, so the check decides, not the monitor. */
static void
network_changed_cb (MagpieConnection *self,
                    gboolean          available,
                    GNetworkMonitor  *monitor)
{
  if (self->work_offline)
    return;
  if (self->state != MAGPIE_CONNECTION_STATE_ONLINE || !available)
    magpie_connection_refresh (self);
}

/* @check_interval is in seconds; 0 means every 15 s. */
MagpieConnection *
magpie_connection_new (const char *server_url,
                       guint       check_interval)
{
  return g_object_new (MAGPIE_TYPE_CONNECTION,
                       "check-interval", check_interval ? check_interval
                                                        : MAGPIE_CONNECTION_DEFAULT_INTERVAL_S,
                       "server-url", server_url,
                       NULL);
}

const char *
magpie_connection_get_server_url (MagpieConnection *self)
{
  g_return_val_if_fail (MAGPIE_IS_CONNECTION (self), NULL);

  return self->server_url;
}

/* A new URL forgets what was known about the old server and checks the new one at once. */
void
magpie_connection_set_server_url (MagpieConnection *self,
                                  const char       *server_url)
{
  g_return_if_fail (MAGPIE_IS_CONNECTION (self));

  if (g_strcmp0 (self->server_url, server_url) == 0)
    return;

  g_free (self->server_url);
  self->server_url = g_strdup (server_url);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SERVER_URL]);

  if (self->work_offline)
    return;
  set_result (self, MAGPIE_CONNECTION_STATE_UNKNOWN, NULL, NULL);
  magpie_connection_refresh (self);
}

MagpieConnectionState
magpie_connection_get_state (MagpieConnection *self)
{
  g_return_val_if_fail (MAGPIE_IS_CONNECTION (self), MAGPIE_CONNECTION_STATE_UNKNOWN);

  return self->state;
}

/* The version the server reported, or NULL unless the state is online. */
const char *
magpie_connection_get_server_version (MagpieConnection *self)
{
  g_return_val_if_fail (MAGPIE_IS_CONNECTION (self), NULL);

  return self->server_version;
}

/* Why the server is unreachable, in words for people, or NULL. */
const char *
magpie_connection_get_error_message (MagpieConnection *self)
{
  g_return_val_if_fail (MAGPIE_IS_CONNECTION (self), NULL);

  return self->error_message;
}

guint
magpie_connection_get_check_interval (MagpieConnection *self)
{
  g_return_val_if_fail (MAGPIE_IS_CONNECTION (self), 0);

  return self->check_interval;
}

gboolean
magpie_connection_get_work_offline (MagpieConnection *self)
{
  g_return_val_if_fail (MAGPIE_IS_CONNECTION (self), FALSE);

  return self->work_offline;
}

/* "Work Offline": while set the state is offline, no check runs and whatever follows the state
 * (uploads, the event stream) stays off the network; unset, the server is checked at once. */
void
magpie_connection_set_work_offline (MagpieConnection *self,
                                    gboolean          work_offline)
{
  g_return_if_fail (MAGPIE_IS_CONNECTION (self));

  work_offline = !!work_offline;
  if (self->work_offline == work_offline)
    return;
  self->work_offline = work_offline;
  g_object_freeze_notify (G_OBJECT (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_WORK_OFFLINE]);
  if (work_offline)
    {
      magpie_connection_start_check (self);  /* cancels the one in flight, starts none */
      set_result (self, MAGPIE_CONNECTION_STATE_OFFLINE, NULL, NULL);
    }
  else
    {
      set_result (self, MAGPIE_CONNECTION_STATE_UNKNOWN, NULL, NULL);
      magpie_connection_refresh (self);
    }
  g_object_thaw_notify (G_OBJECT (self));
}

static void
magpie_connection_dispose (GObject *object)
{
  MagpieConnection *self = MAGPIE_CONNECTION (object);

  g_cancellable_cancel (self->check_cancellable);
  g_clear_object (&self->check_cancellable);
  g_clear_handle_id (&self->timeout_id, g_source_remove);
  if (self->monitor != NULL)
    g_signal_handlers_disconnect_by_func (self->monitor, network_changed_cb, self);
  g_clear_object (&self->monitor);
  g_clear_object (&self->session);

  G_OBJECT_CLASS (magpie_connection_parent_class)->dispose (object);
}

static void
magpie_connection_finalize (GObject *object)
{
  MagpieConnection *self = MAGPIE_CONNECTION (object);

  g_clear_pointer (&self->server_url, g_free);
  g_clear_pointer (&self->server_version, g_free);
  g_clear_pointer (&self->error_message, g_free);

  G_OBJECT_CLASS (magpie_connection_parent_class)->finalize (object);
}

static void
magpie_connection_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  MagpieConnection *self = MAGPIE_CONNECTION (object);

  switch (prop_id)
    {
    case PROP_SERVER_URL:
      g_value_set_string (value, self->server_url);
      break;

    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;

    case PROP_SERVER_VERSION:
      g_value_set_string (value, self->server_version);
      break;

    case PROP_ERROR_MESSAGE:
      g_value_set_string (value, self->error_message);
      break;

    case PROP_CHECK_INTERVAL:
      g_value_set_uint (value, self->check_interval);
      break;

    case PROP_WORK_OFFLINE:
      g_value_set_boolean (value, self->work_offline);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_connection_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  MagpieConnection *self = MAGPIE_CONNECTION (object);

  switch (prop_id)
    {
    case PROP_SERVER_URL:
      magpie_connection_set_server_url (self, g_value_get_string (value));
      break;

    case PROP_CHECK_INTERVAL:
      self->check_interval = g_value_get_uint (value);
      break;

    case PROP_WORK_OFFLINE:
      magpie_connection_set_work_offline (self, g_value_get_boolean (value));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_connection_class_init (MagpieConnectionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = magpie_connection_dispose;
  object_class->finalize = magpie_connection_finalize;
  object_class->get_property = magpie_connection_get_property;
  object_class->set_property = magpie_connection_set_property;

  properties[PROP_SERVER_URL] =
    g_param_spec_string ("server-url", NULL, NULL,
                         NULL,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL,
                       MAGPIE_TYPE_CONNECTION_STATE, MAGPIE_CONNECTION_STATE_UNKNOWN,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  properties[PROP_SERVER_VERSION] =
    g_param_spec_string ("server-version", NULL, NULL,
                         NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  properties[PROP_ERROR_MESSAGE] =
    g_param_spec_string ("error-message", NULL, NULL,
                         NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  properties[PROP_CHECK_INTERVAL] =
    g_param_spec_uint ("check-interval", NULL, NULL,
                       1, G_MAXUINT / 1000, MAGPIE_CONNECTION_DEFAULT_INTERVAL_S,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  properties[PROP_WORK_OFFLINE] =
    g_param_spec_boolean ("work-offline", NULL, NULL,
                          FALSE,
                          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
magpie_connection_init (MagpieConnection *self)
{
  g_autofree char *user_agent = g_strdup_printf ("magpie/%s ", PACKAGE_VERSION);

  self->check_interval = MAGPIE_CONNECTION_DEFAULT_INTERVAL_S;
  self->session = soup_session_new_with_options ("timeout", MAGPIE_CONNECTION_TIMEOUT_S,
                                                 "user-agent", user_agent,
                                                 NULL);
  self->monitor = g_object_ref (g_network_monitor_get_default ());
  g_signal_connect_swapped (self->monitor, "network-changed", G_CALLBACK (network_changed_cb),
                            self);
}
