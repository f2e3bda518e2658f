/* srv-remote.c - SigV4-signed blocking HTTP requests to a remote S3 or STS endpoint */
#define G_LOG_DOMAIN "srv-remote"

#include "config.h"

#include "srv-remote.h"

#include <string.h>

#include "srv-xml.h"

#define SRV_REMOTE_MAX_CONNS           64
/* Each worker and blocking-pool thread holds its own connection (sync sends do not share
 * connections across threads), so the per-host cap must cover them all. */
#define SRV_REMOTE_MAX_CONNS_PER_HOST  32
#define SRV_REMOTE_READ_CHUNK          (64 * 1024)

struct _SrvRemote {
  SoupSession *session;
  char        *endpoint;
  char        *scheme;
  char        *host;        /* for the Host header */
  char        *base_path;   /* the endpoint's path without a trailing '/', often "" */
  char        *region;
  char        *access_key_id;
  char        *secret_access_key;
};

SrvRemote *
srv_remote_new (const char  *endpoint,
                const char  *region,
                const char  *access_key_id,
                const char  *secret_access_key,
                GError     **error)
{
  g_autoptr(GUri) uri = NULL;
  g_autoptr(SrvRemote) self = NULL;
  const char *scheme;
  const char *host;
  const char *path;
  int port;
  gboolean v6;

  g_return_val_if_fail (endpoint != NULL && region != NULL, NULL);
  g_return_val_if_fail (access_key_id != NULL && secret_access_key != NULL, NULL);

  uri = g_uri_parse (endpoint, SOUP_HTTP_URI_FLAGS, NULL);
  scheme = uri ? g_uri_get_scheme (uri) : NULL;
  host = uri ? g_uri_get_host (uri) : NULL;
  if (uri == NULL || host == NULL || *host == '\0' ||
      (g_strcmp0 (scheme, "http") != 0 && g_strcmp0 (scheme, "https") != 0) ||
      g_uri_get_query (uri) != NULL || g_uri_get_userinfo (uri) != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "'%s' is not an http:// or https:// URL of a host (with no query or "
                   "user name)", endpoint);
      return NULL;
    }

  self = g_new0 (SrvRemote, 1);
  self->endpoint = g_strdup (endpoint);
  self->scheme = g_strdup (scheme);
  port = g_uri_get_port (uri);
  v6 = strchr (host, ':') != NULL;
  if (port < 0 || (port == 80 && strcmp (scheme, "http") == 0) ||
      (port == 443 && strcmp (scheme, "https") == 0))
    self->host = v6 ? g_strdup_printf ("[%s]", host) : g_strdup (host);
  else
    self->host = v6 ? g_strdup_printf ("[%s]:%d", host, port) : g_strdup_printf ("%s:%d", host,
                                                                               port);
  path = g_uri_get_path (uri);
  self->base_path = g_strdup (path);
  while (*self->base_path && self->base_path[strlen (self->base_path) - 1] == '/')
    self->base_path[strlen (self->base_path) - 1] = '\0';
  self->region = g_strdup (region);
  self->access_key_id = g_strdup (access_key_id);
  self->secret_access_key = g_strdup (secret_access_key);

  self->session = soup_session_new_with_options ("timeout", SRV_REMOTE_TIMEOUT_S,
                                                 "idle-timeout", SRV_REMOTE_TIMEOUT_S,
                                                 "max-conns", SRV_REMOTE_MAX_CONNS,
                                                 "max-conns-per-host",
                                                 SRV_REMOTE_MAX_CONNS_PER_HOST,
                                                 "user-agent", "magpied/" PACKAGE_VERSION,
                                                 NULL);
  /* Object bytes must arrive as stored: a gzip-encoded object decoded on the way would no
   * longer match its Content-Length or its digests. */
  soup_session_remove_feature_by_type (self->session, SOUP_TYPE_CONTENT_DECODER);
  return g_steal_pointer (&self);
}

void
srv_remote_free (SrvRemote *self)
{
  if (self == NULL)
    return;
  if (self->session)
    soup_session_abort (self->session);
  g_clear_object (&self->session);
  g_free (self->endpoint);
  g_free (self->scheme);
  g_free (self->host);
  g_free (self->base_path);
  g_free (self->region);
  g_free (self->access_key_id);
  if (self->secret_access_key)
    memset (self->secret_access_key, 0, strlen (self->secret_access_key));
  g_free (self->secret_access_key);
  g_free (self);
}

const char *
srv_remote_endpoint (SrvRemote *self)
{
  return self->endpoint;
}

const char *
srv_remote_host (SrvRemote *self)
{
  return self->host;
}

GInputStream *
srv_remote_send (SrvRemote               *self,
                 const SrvRemoteRequest  *request,
                 SoupMessage            **message,
                 GCancellable            *cancellable,
                 GError                 **error)
{
  const char *host = request->host ? request->host : self->host;
  g_autofree char *path = g_strconcat (self->base_path, request->path, NULL);
  g_autofree char *url = NULL;
  g_autofree char *payload_hash = NULL;
  g_autoptr(GUri) uri = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(MpSigv4Signed) sig = NULL;
  g_autoptr(GArray) headers = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  SoupMessageHeaders *out;
  MpSigv4Header host_header = { "host", host };
  MpSigv4Request req = { 0 };
  MpSigv4SigningParams params = { 0 };
  GInputStream *in;

  g_return_val_if_fail (request->path != NULL && request->path[0] == '/', NULL);
  g_return_val_if_fail (request->body == NULL || request->body_stream == NULL, NULL);

  url = g_strdup_printf ("%s://%s%s%s%s", self->scheme, host, path,
                         request->query && *request->query ? "?" : "",
                         request->query ? request->query : "");
  uri = g_uri_parse (url, SOUP_HTTP_URI_FLAGS, error);
  if (uri == NULL)
    {
      g_prefix_error (error, "cannot form a request URL: ");
      return NULL;
    }
  msg = soup_message_new_from_uri (request->method, uri);

  if (request->body != NULL)
    {
      gsize len;
      const void *data = g_bytes_get_data (request->body, &len);

      payload_hash = mp_sigv4_sha256_hex (data ? data : "", len);
    }
  else if (request->body_stream != NULL)
    payload_hash = g_strdup (MP_SIGV4_UNSIGNED_PAYLOAD);
  else
    payload_hash = g_strdup (MP_SIGV4_EMPTY_SHA256);

  g_array_append_val (headers, host_header);
  if (request->content_type != NULL)
    {
      MpSigv4Header ct = { "content-type", request->content_type };

      g_array_append_val (headers, ct);
    }
  g_array_append_vals (headers, request->headers, request->n_headers);

  req.method = request->method;
  req.path = path[0] ? path : "/";
  req.query = request->query;
  req.headers = (const MpSigv4Header *) headers->data;
  req.n_headers = headers->len;
  req.payload_hash = payload_hash;
  params.access_key_id = self->access_key_id;
  params.secret_access_key = self->secret_access_key;
  params.region = self->region;
  params.service = request->service;
  params.now = g_get_real_time () / G_USEC_PER_SEC;
  params.flags = request->flags;
  sig = mp_sigv4_sign (&req, &params, error);
  if (sig == NULL)
    return NULL;

  out = soup_message_get_request_headers (msg);
  for (guint i = 0; i < headers->len; i++)
    {
      const MpSigv4Header *h = &g_array_index (headers, MpSigv4Header, i);

      if (g_ascii_strcasecmp (h->name, "content-type") != 0)
        soup_message_headers_replace (out, h->name, h->value);
    }
  for (gsize i = 0; i < sig->n_set_headers; i++)
    soup_message_headers_replace (out, sig->set_headers[i].name, sig->set_headers[i].value);
  if (request->body != NULL)
    soup_message_set_request_body_from_bytes (msg, request->content_type, request->body);
  else if (request->body_stream != NULL)
    soup_message_set_request_body (msg, request->content_type, request->body_stream,
                                   request->body_size);

  in = soup_session_send (self->session, msg, cancellable, error);
  if (in == NULL)
    {
      g_prefix_error (error, "%s %s: ", request->method, self->endpoint);
      return NULL;
    }
  /* The body stream reads through the message; keep it alive as long as the stream. */
  g_object_set_data_full (G_OBJECT (in), "srv-remote-message", g_object_ref (msg),
                          g_object_unref);
  *message = g_steal_pointer (&msg);
  return in;
}

GBytes *
srv_remote_read_all (GInputStream  *in,
                     gsize          max,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_autoptr(GByteArray) buf = g_byte_array_new ();
  guint8 chunk[SRV_REMOTE_READ_CHUNK];

  for (;;)
    {
      gssize n = g_input_stream_read (in, chunk, sizeof chunk, cancellable, error);

      if (n < 0)
        return NULL;
      if (n == 0)
        break;
      if (buf->len + (gsize) n > max)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                       "the response is over %" G_GSIZE_FORMAT " bytes", max);
          return NULL;
        }
      g_byte_array_append (buf, chunk, n);
    }
  return g_byte_array_free_to_bytes (g_steal_pointer (&buf));
}

gboolean
srv_remote_parse_error (GBytes  *body,
                        char   **code,
                        char   **message)
{
  g_autoptr(SrvXmlNode) root = NULL;
  const SrvXmlNode *error_node;
  gsize len = 0;
  const char *data = body ? g_bytes_get_data (body, &len) : NULL;

  *code = *message = NULL;
  if (data == NULL || len == 0)
    return FALSE;
  root = srv_xml_parse (data, len, NULL);
  if (root == NULL)
    return FALSE;
  error_node = strcmp (root->name, "Error") == 0 ? root : srv_xml_child (root, "Error");
  if (error_node == NULL || srv_xml_child_text (error_node, "Code") == NULL)
    return FALSE;
  *code = g_strstrip (g_strdup (srv_xml_child_text (error_node, "Code")));
  *message = g_strstrip (g_strdup (srv_xml_child_text (error_node, "Message")
                                   ? srv_xml_child_text (error_node, "Message") : ""));
  return TRUE;
}
