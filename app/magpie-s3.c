/* magpie-s3.c - requests to the object store: SigV4-signed messages and the XML they answer
 *
 * Path-style addressing (<endpoint>/<bucket>/<key>), which magpied, MinIO, Ceph RGW and AWS all
 * accept. Signing is lib's mp_sigv4, the code magpied verifies with. Answers are read whole
 * but never past MAGPIE_S3_MAX_ANSWER, and parsed with GMarkup into the few fields the
 * uploader needs.
 */
#define G_LOG_DOMAIN "magpie-s3"

#include "config.h"

#include "magpie-s3.h"

#include <glib/gi18n.h>
#include <string.h>

#include "magpie-client-error.h"
#include "mp-sigv4.h"

#define MAGPIE_S3_READ_CHUNK (64 * 1024)

/* A request for @key in the credentials' bucket, signed for now: @query is the raw query
 * without '?' (NULL for none), @payload_hash the hex SHA-256 of the body that will be set
 * (NULL for an empty one). The caller sets the body. Returns NULL and sets @error when the
 * credentials name an endpoint that cannot be used. */
SoupMessage *
magpie_s3_message_new (const MagpieS3Credentials  *credentials,
                       const char                 *method,
                       const char                 *key,
                       const char                 *query,
                       const char                 *content_type,
                       const char                 *payload_hash,
                       GError                    **error)
{
  g_autoptr(GUri) endpoint = NULL;
  g_autoptr(MpSigv4Signed) signed_request = NULL;
  g_autoptr(SoupMessage) message = NULL;
  g_autofree char *escaped_key = NULL;
  g_autofree char *path = NULL;
  g_autofree char *host = NULL;
  g_autofree char *url = NULL;
  const char *base;
  SoupMessageHeaders *headers;
  MpSigv4Header sign_headers[2];
  MpSigv4Request request = { 0 };
  MpSigv4SigningParams params = { 0 };

  g_return_val_if_fail (credentials != NULL, NULL);
  g_return_val_if_fail (method != NULL && key != NULL, NULL);

  endpoint = g_uri_parse (credentials->endpoint, G_URI_FLAGS_NONE, NULL);
  if (endpoint == NULL || g_uri_get_host (endpoint) == NULL ||
      (g_strcmp0 (g_uri_get_scheme (endpoint), "http") != 0 &&
       g_strcmp0 (g_uri_get_scheme (endpoint), "https") != 0))
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                   _("The server named a storage address Magpie cannot use"));
      return NULL;
    }
  /* The endpoint's own path (a proxy's prefix), without its trailing slash, then the bucket. */
  base = g_uri_get_path (endpoint);
  while (*base == '/')
    base++;
  escaped_key = g_uri_escape_string (key, "/", FALSE);
  path = g_strconcat ("/", base, *base != '\0' && !g_str_has_suffix (base, "/") ? "/" : "",
                      credentials->bucket, "/", escaped_key, NULL);
  host = g_uri_get_port (endpoint) > 0
         ? g_strdup_printf ("%s:%d", g_uri_get_host (endpoint), g_uri_get_port (endpoint))
         : g_strdup (g_uri_get_host (endpoint));
  url = g_strdup_printf ("%s://%s%s%s%s", g_uri_get_scheme (endpoint), host, path,
                         query != NULL ? "?" : "", query != NULL ? query : "");
  message = soup_message_new (method, url);
  if (message == NULL)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                   _("The server named a storage address Magpie cannot use"));
      return NULL;
    }

  sign_headers[0] = (MpSigv4Header) { "host", host };
  sign_headers[1] = (MpSigv4Header) { "content-type", content_type };
  request.method = method;
  request.path = path;
  request.query = query;
  request.headers = sign_headers;
  request.n_headers = content_type != NULL ? 2 : 1;
  request.payload_hash = payload_hash != NULL ? payload_hash : MP_SIGV4_EMPTY_SHA256;
  params.access_key_id = credentials->access_key_id;
  params.secret_access_key = credentials->secret_access_key;
  params.session_token = credentials->session_token;
  params.region = credentials->region;
  params.service = "s3";
  params.now = g_get_real_time () / G_USEC_PER_SEC;
  params.flags = MP_SIGV4_FLAGS_S3;
  signed_request = mp_sigv4_sign (&request, &params, error);
  if (signed_request == NULL)
    return NULL;

  headers = soup_message_get_request_headers (message);
  for (gsize i = 0; i < signed_request->n_set_headers; i++)
    soup_message_headers_replace (headers, signed_request->set_headers[i].name,
                                  signed_request->set_headers[i].value);
  if (content_type != NULL)
    soup_message_headers_replace (headers, "Content-Type", content_type);
  return g_steal_pointer (&message);
}

/* The Content-Type a photo with file name extension @extension is stored with. */
const char *
magpie_s3_content_type_for (const char *extension)
{
  g_autofree char *lower = g_ascii_strdown (extension, -1);

  if (g_str_equal (lower, "jpg") || g_str_equal (lower, "jpeg"))
    return "image/jpeg";
  if (g_str_equal (lower, "png"))
    return "image/png";
  if (g_str_equal (lower, "webp"))
    return "image/webp";
  if (g_str_equal (lower, "gif"))
    return "image/gif";
  return "application/octet-stream";
}

/* Sending: the answer's body, read up to MAGPIE_S3_MAX_ANSWER ---------------------------- */

typedef struct {
  SoupMessage  *message;
  GInputStream *stream;
  GByteArray   *body;
} SendJob;

static void
send_job_free (SendJob *job)
{
  g_clear_object (&job->message);
  g_clear_object (&job->stream);
  g_clear_pointer (&job->body, g_byte_array_unref);
  g_free (job);
}

static void
read_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  SendJob *job = g_task_get_task_data (task);
  g_autoptr(GBytes) chunk = NULL;
  GCancellable *cancellable;
  GError *error = NULL;

  chunk = g_input_stream_read_bytes_finish (G_INPUT_STREAM (object), result, &error);
  if (chunk == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  if (g_bytes_get_size (chunk) == 0)
    {
      g_task_return_pointer (task, g_byte_array_free_to_bytes (g_steal_pointer (&job->body)),
                             (GDestroyNotify) g_bytes_unref);
      return;
    }
  if (job->body->len + g_bytes_get_size (chunk) > MAGPIE_S3_MAX_ANSWER)
    {
      g_task_return_new_error (task, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                               _("The storage gave an answer Magpie does not understand"));
      return;
    }
  g_byte_array_append (job->body, g_bytes_get_data (chunk, NULL), g_bytes_get_size (chunk));
  cancellable = g_task_get_cancellable (task);
  g_input_stream_read_bytes_async (job->stream, MAGPIE_S3_READ_CHUNK, G_PRIORITY_LOW,
                                   cancellable, read_cb, g_steal_pointer (&task));
}

static void
sent_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  SendJob *job = g_task_get_task_data (task);
  GCancellable *cancellable;
  GError *error = NULL;

  job->stream = soup_session_send_finish (SOUP_SESSION (object), result, &error);
  if (job->stream == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  cancellable = g_task_get_cancellable (task);
  g_input_stream_read_bytes_async (job->stream, MAGPIE_S3_READ_CHUNK, G_PRIORITY_LOW,
                                   cancellable, read_cb, g_steal_pointer (&task));
}

/* Sends @message and reads its answer; finishes with the body (look at the message for the
 * status) or an error when no answer arrived or it was too large to be a store's. */
void
magpie_s3_send_async (SoupSession         *session,
                      SoupMessage         *message,
                      GCancellable        *cancellable,
                      GAsyncReadyCallback  callback,
                      gpointer             user_data)
{
  GTask *task;
  SendJob *job;

  g_return_if_fail (SOUP_IS_SESSION (session));
  g_return_if_fail (SOUP_IS_MESSAGE (message));

  job = g_new0 (SendJob, 1);
  job->message = g_object_ref (message);
  job->body = g_byte_array_new ();
  task = g_task_new (session, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_s3_send_async);
  g_task_set_task_data (task, job, (GDestroyNotify) send_job_free);
  soup_session_send_async (session, message, G_PRIORITY_LOW, cancellable, sent_cb, task);
}

GBytes *
magpie_s3_send_finish (SoupSession   *session,
                       GAsyncResult  *result,
                       GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, session), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* The message a magpie_s3_send_async() @result is for: its status and headers. */
SoupMessage *
magpie_s3_send_get_message (GAsyncResult *result)
{
  SendJob *job;

  g_return_val_if_fail (G_IS_TASK (result), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == magpie_s3_send_async, NULL);

  job = g_task_get_task_data (G_TASK (result));
  return job->message;
}

/* XML answers ---------------------------------------------------------------------------- */

/* What an answer says: the root's name, the text of its leaf children, and the leaf texts of
 * each child named @record (S3 answers are flat lists of such records). */
typedef struct {
  const char *record;
  GPtrArray  *stack;
  GString    *text;
  char       *root;
  GHashTable *fields;
  GPtrArray  *records;
  GHashTable *current;
} XmlAnswer;

static GHashTable *
new_fields (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

static void
xml_answer_free (XmlAnswer *answer)
{
  g_ptr_array_unref (answer->stack);
  g_string_free (answer->text, TRUE);
  g_free (answer->root);
  g_hash_table_unref (answer->fields);
  g_ptr_array_unref (answer->records);
  g_clear_pointer (&answer->current, g_hash_table_unref);
  g_free (answer);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (XmlAnswer, xml_answer_free)

static void
xml_start (GMarkupParseContext  *context,
           const char           *name,
           const char          **attribute_names,
           const char          **attribute_values,
           gpointer              user_data,
           GError              **error)
{
  XmlAnswer *answer = user_data;

  g_ptr_array_add (answer->stack, g_strdup (name));
  if (answer->stack->len == 1)
    answer->root = g_strdup (name);
  else if (answer->stack->len == 2 && g_strcmp0 (name, answer->record) == 0)
    {
      g_clear_pointer (&answer->current, g_hash_table_unref);
      answer->current = new_fields ();
    }
  g_string_truncate (answer->text, 0);
}

static void
xml_end (GMarkupParseContext  *context,
         const char           *name,
         gpointer              user_data,
         GError              **error)
{
  XmlAnswer *answer = user_data;

  if (answer->stack->len == 2)
    {
      if (answer->current != NULL && g_strcmp0 (name, answer->record) == 0)
        g_ptr_array_add (answer->records, g_steal_pointer (&answer->current));
      else
        g_hash_table_replace (answer->fields, g_strdup (name), g_strdup (answer->text->str));
    }
  else if (answer->stack->len == 3 && answer->current != NULL)
    g_hash_table_replace (answer->current, g_strdup (name), g_strdup (answer->text->str));
  g_ptr_array_set_size (answer->stack, answer->stack->len - 1);
  g_string_truncate (answer->text, 0);
}

static void
xml_text (GMarkupParseContext  *context,
          const char           *text,
          gsize                 len,
          gpointer              user_data,
          GError              **error)
{
  XmlAnswer *answer = user_data;

  g_string_append_len (answer->text, text, len);
}

static XmlAnswer *
parse_answer (GBytes      *body,
              const char  *record,
              GError     **error)
{
  static const GMarkupParser parser = { xml_start, xml_end, xml_text, NULL, NULL };
  g_autoptr(XmlAnswer) answer = g_new0 (XmlAnswer, 1);
  g_autoptr(GMarkupParseContext) context = NULL;
  gsize len = 0;
  const char *data = body != NULL ? g_bytes_get_data (body, &len) : NULL;

  answer->record = record;
  answer->stack = g_ptr_array_new_with_free_func (g_free);
  answer->text = g_string_new (NULL);
  answer->fields = new_fields ();
  answer->records = g_ptr_array_new_with_free_func ((GDestroyNotify) g_hash_table_unref);
  context = g_markup_parse_context_new (&parser, G_MARKUP_TREAT_CDATA_AS_TEXT, answer, NULL);
  if (data == NULL || len == 0 || len > MAGPIE_S3_MAX_ANSWER ||
      !g_markup_parse_context_parse (context, data, len, NULL) ||
      !g_markup_parse_context_end_parse (context, NULL) || answer->root == NULL)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                   _("The storage gave an answer Magpie does not understand"));
      return NULL;
    }
  return g_steal_pointer (&answer);
}

/* The <Code> of an S3 error document (also one sent with status 200), or NULL. */
char *
magpie_s3_error_code (GBytes *body)
{
  g_autoptr(XmlAnswer) answer = parse_answer (body, NULL, NULL);
  const char *code;

  if (answer == NULL || !g_str_equal (answer->root, "Error"))
    return NULL;
  code = g_hash_table_lookup (answer->fields, "Code");
  return code != NULL && *code != '\0' ? g_strdup (code) : NULL;
}

/* The UploadId of an InitiateMultipartUploadResult. */
char *
magpie_s3_parse_upload_id (GBytes  *body,
                           GError **error)
{
  g_autoptr(XmlAnswer) answer = parse_answer (body, NULL, error);
  const char *upload_id;

  if (answer == NULL)
    return NULL;
  upload_id = g_hash_table_lookup (answer->fields, "UploadId");
  if (!g_str_equal (answer->root, "InitiateMultipartUploadResult") || upload_id == NULL ||
      *upload_id == '\0' || strlen (upload_id) > 1024)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                   _("The storage gave an answer Magpie does not understand"));
      return NULL;
    }
  return g_strdup (upload_id);
}

static gboolean
parse_number (const char *text,
              gint64      min,
              gint64      max,
              gint64     *out)
{
  guint64 value;

  if (text == NULL || !g_ascii_string_to_unsigned (text, 10, min, max, &value, NULL))
    return FALSE;
  *out = (gint64) value;
  return TRUE;
}

/* Appends the parts of a ListPartsResult page to @parts (MagpiePart); *truncated and
 * *next_marker say whether and where the list goes on. */
gboolean
magpie_s3_parse_list_parts (GBytes    *body,
                            GArray    *parts,
                            gboolean  *truncated,
                            guint     *next_marker,
                            GError   **error)
{
  g_autoptr(XmlAnswer) answer = parse_answer (body, "Part", error);
  gint64 marker = 0;

  g_return_val_if_fail (parts != NULL, FALSE);

  if (answer == NULL)
    return FALSE;
  if (!g_str_equal (answer->root, "ListPartsResult"))
    goto bad;
  *truncated = g_strcmp0 (g_hash_table_lookup (answer->fields, "IsTruncated"), "true") == 0;
  if (*truncated &&
      !parse_number (g_hash_table_lookup (answer->fields, "NextPartNumberMarker"), 1,
                     MAGPIE_MULTIPART_MAX_PARTS, &marker))
    goto bad;
  *next_marker = (guint) marker;
  for (guint i = 0; i < answer->records->len; i++)
    {
      GHashTable *fields = answer->records->pdata[i];
      MagpiePart part = { 0 };
      gint64 number;
      const char *etag = g_hash_table_lookup (fields, "ETag");

      if (!parse_number (g_hash_table_lookup (fields, "PartNumber"), 1,
                         MAGPIE_MULTIPART_MAX_PARTS, &number) ||
          !parse_number (g_hash_table_lookup (fields, "Size"), 0, G_MAXINT64, &part.size) ||
          etag == NULL || *etag == '\0')
        goto bad;
      part.number = (guint) number;
      part.etag = g_strdup (etag);
      g_array_append_val (parts, part);
    }
  return TRUE;

bad:
  g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
               _("The storage gave an answer Magpie does not understand"));
  return FALSE;
}

/* The CompleteMultipartUpload body for every part of @plan (MagpiePlannedPart), in order. */
char *
magpie_s3_complete_xml (const GArray *plan)
{
  GString *xml = g_string_new ("<CompleteMultipartUpload>");

  g_return_val_if_fail (plan != NULL, NULL);

  for (guint i = 0; i < plan->len; i++)
    {
      const MagpiePlannedPart *part = &g_array_index (plan, MagpiePlannedPart, i);
      g_autofree char *etag = g_markup_escape_text (part->etag != NULL ? part->etag : "", -1);

      g_string_append_printf (xml, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>",
                              part->number, etag);
    }
  g_string_append (xml, "</CompleteMultipartUpload>");
  return g_string_free (xml, FALSE);
}

/* Whether the store's error @code means the credentials are stale: fetch new ones and
 * try again at once. */
gboolean
magpie_s3_credentials_error (const char *code)
{
  return g_strcmp0 (code, "ExpiredToken") == 0 || g_strcmp0 (code, "InvalidToken") == 0 ||
         g_strcmp0 (code, "InvalidAccessKeyId") == 0 ||
         g_strcmp0 (code, "TokenRefreshRequired") == 0;
}
