/* magpie-api.c - JSON requests to magpied's REST API over a shared SoupSession */
#define G_LOG_DOMAIN "magpie-api"

#include "config.h"

#include "magpie-api.h"

#include <glib/gi18n.h>
#include <string.h>

#include "magpie-client-error.h"

/* Answers from the API are small JSON documents; anything bigger is not one of them. */
#define MAGPIE_API_MAX_BODY (4 * 1024 * 1024)

typedef struct {
  SoupMessage *message;
  guint        status;
} Request;

static void
request_free (Request *request)
{
  g_clear_object (&request->message);
  g_free (request);
}

static void
read_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  Request *request = g_task_get_task_data (task);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  GError *error = NULL;
  gsize len;
  const char *data;

  bytes = soup_session_send_and_read_finish (SOUP_SESSION (object), result, &error);
  if (bytes == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  request->status = soup_message_get_status (request->message);
  data = g_bytes_get_data (bytes, &len);
  if (len == 0)
    {
      g_task_return_pointer (task, json_node_new (JSON_NODE_NULL),
                             (GDestroyNotify) json_node_unref);
      return;
    }
  if (len > MAGPIE_API_MAX_BODY || !json_parser_load_from_data (parser, data, len, NULL))
    {
      g_task_return_new_error (task, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                               /* Translators: %u is an HTTP status code */
                               _("The server gave an answer Magpie does not understand "
                                 "(HTTP %u)"), request->status);
      return;
    }
  g_task_return_pointer (task, json_parser_steal_root (parser),
                         (GDestroyNotify) json_node_unref);
}

void
magpie_api_request_async (SoupSession         *session,
                          const char          *method,
                          const char          *server_url,
                          const char          *path,
                          const char          *token,
                          const char          *body,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autofree char *url = NULL;
  Request *request;

  g_return_if_fail (SOUP_IS_SESSION (session));
  g_return_if_fail (server_url != NULL && path != NULL);

  task = g_task_new (session, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_api_request_async);
  url = g_strconcat (server_url, g_str_has_suffix (server_url, "/") ? path + 1 : path, NULL);
  request = g_new0 (Request, 1);
  request->message = soup_message_new (method, url);
  g_task_set_task_data (task, request, (GDestroyNotify) request_free);
  if (request->message == NULL)
    {
      g_task_return_new_error (task, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_INVALID_URL,
                               /* Translators: %s is a web address */
                               _("“%s” is not a valid server address"), url);
      return;
    }
  if (token != NULL)
    {
      g_autofree char *value = g_strconcat ("Bearer ", token, NULL);

      soup_message_headers_replace (soup_message_get_request_headers (request->message),
                                    "Authorization", value);
    }
  if (body != NULL)
    {
      g_autoptr(GBytes) bytes = g_bytes_new (body, strlen (body));

      soup_message_set_request_body_from_bytes (request->message, "application/json", bytes);
    }
  soup_session_send_and_read_async (session, request->message, G_PRIORITY_DEFAULT, cancellable,
                                    read_cb, g_steal_pointer (&task));
}

JsonNode *
magpie_api_request_finish (GAsyncResult  *result,
                           guint         *status,
                           GError       **error)
{
  JsonNode *node;

  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == magpie_api_request_async,
                        NULL);

  node = g_task_propagate_pointer (G_TASK (result), error);
  if (status != NULL)
    *status = node != NULL ? ((Request *) g_task_get_task_data (G_TASK (result)))->status : 0;
  return node;
}

const char *
magpie_api_get_string (JsonNode   *node,
                       const char *member)
{
  JsonObject *object;

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return NULL;
  object = json_node_get_object (node);
  if (!json_object_has_member (object, member) ||
      json_node_get_value_type (json_object_get_member (object, member)) != G_TYPE_STRING)
    return NULL;
  return json_object_get_string_member (object, member);
}

char *
magpie_api_error_message (JsonNode *body,
                          guint     status)
{
  if (body != NULL && JSON_NODE_HOLDS_OBJECT (body) &&
      json_object_has_member (json_node_get_object (body), "error"))
    {
      JsonNode *error = json_object_get_member (json_node_get_object (body), "error");
      const char *message = magpie_api_get_string (error, "message");

      if (message != NULL)
        return g_strdup (message);
    }
  /* Translators: %u is an HTTP status code */
  return g_strdup_printf (_("The server refused the request (HTTP %u)"), status);
}
