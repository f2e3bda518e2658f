/* srv-sts.c - AssumeRole against a remote store's STS, confined by a session policy
 *
 * The role (from --sts-role-arn) may reach the whole bucket; the inline session policy sent
 * with each AssumeRole narrows the credentials to one identity's prefix, since the effective
 * permissions are the intersection of the two. That is how AWS S3, MinIO and Ceph RGW all
 * scope temporary credentials, so clients use the same upload code against each of them.
 */
#define G_LOG_DOMAIN "srv-sts"

#include "config.h"

#include "srv-sts.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "srv-remote.h"
#include "srv-xml.h"

#define SRV_STS_API_VERSION  "2011-06-15"
/* AssumeRole answers are about 1.5 KB; session tokens can grow with the policy's size. */
#define SRV_STS_RESPONSE_MAX (64 * 1024)

struct _SrvSts {
  SrvRemote *remote;
};

G_DEFINE_QUARK (srv-sts-error-quark, srv_sts_error)

char *
srv_sts_partition (const char *role_arn)
{
  g_auto(GStrv) fields = role_arn ? g_strsplit (role_arn, ":", 3) : NULL;

  if (fields != NULL && g_strv_length (fields) == 3 && strcmp (fields[0], "arn") == 0 &&
      g_str_has_prefix (fields[1], "aws"))
    return g_strdup (fields[1]);
  return g_strdup ("aws");
}

char *
srv_sts_session_policy (const char *partition,
                        const char *bucket,
                        const char *prefix)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *bucket_arn = NULL;
  g_autofree char *objects_arn = NULL;
  g_autofree char *below = NULL;
  static const char *object_actions[] = {
    "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
    /* CreateMultipartUpload, UploadPart and CompleteMultipartUpload are s3:PutObject. */
    "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
  };

  g_return_val_if_fail (partition != NULL && bucket != NULL && prefix != NULL, NULL);
  /* '*', '?' and "${...}" mean something in policies; identity prefixes never hold them. */
  g_return_val_if_fail (strpbrk (prefix, "*?$") == NULL && g_str_has_suffix (prefix, "/"), NULL);

  bucket_arn = g_strdup_printf ("arn:%s:s3:::%s", partition, bucket);
  objects_arn = g_strdup_printf ("%s/%s*", bucket_arn, prefix);
  below = g_strconcat (prefix, "*", NULL);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "Version");
  json_builder_add_string_value (b, "2012-10-17");
  json_builder_set_member_name (b, "Statement");
  json_builder_begin_array (b);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "Sid");
  json_builder_add_string_value (b, "OwnObjects");
  json_builder_set_member_name (b, "Effect");
  json_builder_add_string_value (b, "Allow");
  json_builder_set_member_name (b, "Action");
  json_builder_begin_array (b);
  for (gsize i = 0; i < G_N_ELEMENTS (object_actions); i++)
    json_builder_add_string_value (b, object_actions[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "Resource");
  json_builder_add_string_value (b, objects_arn);
  json_builder_end_object (b);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "Sid");
  json_builder_add_string_value (b, "ListOwnPrefix");
  json_builder_set_member_name (b, "Effect");
  json_builder_add_string_value (b, "Allow");
  json_builder_set_member_name (b, "Action");
  json_builder_add_string_value (b, "s3:ListBucket");
  json_builder_set_member_name (b, "Resource");
  json_builder_add_string_value (b, bucket_arn);
  json_builder_set_member_name (b, "Condition");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "StringLike");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "s3:prefix");
  json_builder_begin_array (b);
  json_builder_add_string_value (b, prefix);
  json_builder_add_string_value (b, below);
  json_builder_end_array (b);
  json_builder_end_object (b);
  json_builder_end_object (b);
  json_builder_end_object (b);

  json_builder_end_array (b);
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

char *
srv_sts_session_name (const char *identity_id)
{
  GString *name = g_string_new (NULL);

  g_return_val_if_fail (identity_id != NULL, NULL);
  for (const char *c = identity_id; *c && name->len < 64; c++)
    if (g_ascii_isalnum (*c) || strchr ("+=,.@_-", *c) != NULL)
      g_string_append_c (name, *c);
  if (name->len < 2)
    g_string_prepend (name, "magpie-");
  return g_string_free (name, FALSE);
}

static void
add_form (GString    *form,
          const char *name,
          const char *value)
{
  g_autofree char *escaped = g_uri_escape_string (value, NULL, FALSE);

  g_string_append_printf (form, "%s%s=%s", form->len ? "&" : "", name, escaped);
}

char *
srv_sts_assume_role_body (const char *role_arn,
                          const char *session_name,
                          const char *policy,
                          gint64      duration_s)
{
  GString *form = g_string_new (NULL);
  g_autofree char *duration = g_strdup_printf ("%" G_GINT64_FORMAT, duration_s);

  g_return_val_if_fail (role_arn != NULL && session_name != NULL, NULL);
  add_form (form, "Action", "AssumeRole");
  add_form (form, "DurationSeconds", duration);
  if (policy != NULL)
    add_form (form, "Policy", policy);
  add_form (form, "RoleArn", role_arn);
  add_form (form, "RoleSessionName", session_name);
  add_form (form, "Version", SRV_STS_API_VERSION);
  return g_string_free (form, FALSE);
}

static char *
stripped (const char *text)
{
  return text ? g_strstrip (g_strdup (text)) : NULL;
}

SrvStsCredentials *
srv_sts_parse_response (const char  *xml,
                        gsize        len,
                        GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(SrvXmlNode) root = srv_xml_parse (xml, len, &local_error);
  g_autoptr(SrvStsCredentials) creds = NULL;
  g_autoptr(GDateTime) expiration = NULL;
  g_autofree char *expiration_text = NULL;
  SrvXmlNode *result;
  SrvXmlNode *node;

  if (root == NULL)
    {
      g_set_error (error, SRV_STS_ERROR, SRV_STS_ERROR_MALFORMED,
                   "the STS answer is not XML: %s", local_error->message);
      return NULL;
    }
  result = strcmp (root->name, "AssumeRoleResponse") == 0
           ? srv_xml_child (root, "AssumeRoleResult") : NULL;
  node = result ? srv_xml_child (result, "Credentials") : NULL;
  if (node == NULL)
    {
      g_set_error (error, SRV_STS_ERROR, SRV_STS_ERROR_MALFORMED,
                   "the STS answer is a <%s>, not an AssumeRoleResponse with Credentials",
                   root->name);
      return NULL;
    }
  creds = g_new0 (SrvStsCredentials, 1);
  creds->access_key_id = stripped (srv_xml_child_text (node, "AccessKeyId"));
  creds->secret_access_key = stripped (srv_xml_child_text (node, "SecretAccessKey"));
  creds->session_token = stripped (srv_xml_child_text (node, "SessionToken"));
  expiration_text = stripped (srv_xml_child_text (node, "Expiration"));
  if (expiration_text != NULL)
    expiration = g_date_time_new_from_iso8601 (expiration_text, NULL);
  if (creds->access_key_id == NULL || *creds->access_key_id == '\0' ||
      creds->secret_access_key == NULL || *creds->secret_access_key == '\0' ||
      creds->session_token == NULL || *creds->session_token == '\0' || expiration == NULL)
    {
      g_set_error (error, SRV_STS_ERROR, SRV_STS_ERROR_MALFORMED,
                   "the STS credentials lack an access key id, secret, session token or a "
                   "valid Expiration");
      return NULL;
    }
  creds->expiration = g_date_time_to_unix (expiration);
  return g_steal_pointer (&creds);
}

SrvSts *
srv_sts_new (const char  *endpoint,
             const char  *region,
             const char  *access_key_id,
             const char  *secret_access_key,
             GError     **error)
{
  SrvRemote *remote = srv_remote_new (endpoint, region, access_key_id, secret_access_key, error);
  SrvSts *sts;

  if (remote == NULL)
    return NULL;
  sts = g_new0 (SrvSts, 1);
  sts->remote = remote;
  return sts;
}

void
srv_sts_free (SrvSts *sts)
{
  if (sts == NULL)
    return;
  srv_remote_free (sts->remote);
  g_free (sts);
}

SrvStsCredentials *
srv_sts_assume_role (SrvSts      *sts,
                     const char  *role_arn,
                     const char  *session_name,
                     const char  *policy,
                     gint64       duration_s,
                     GError     **error)
{
  char *form = srv_sts_assume_role_body (role_arn, session_name, policy, duration_s);
  g_autoptr(GBytes) body = g_bytes_new_take (form, strlen (form));
  g_autoptr(GError) local_error = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GBytes) answer = NULL;
  g_autofree char *code = NULL;
  g_autofree char *message = NULL;
  SrvRemoteRequest request = {
    .method = "POST", .path = "/", .service = "sts", .flags = MP_SIGV4_FLAGS_GENERIC,
    .body = body, .content_type = "application/x-www-form-urlencoded; charset=utf-8",
  };
  const char *data;
  gsize len;
  guint status;

  in = srv_remote_send (sts->remote, &request, &msg, NULL, &local_error);
  if (in != NULL)
    answer = srv_remote_read_all (in, SRV_STS_RESPONSE_MAX, NULL, &local_error);
  if (answer == NULL)
    {
      g_set_error (error, SRV_STS_ERROR, SRV_STS_ERROR_UNAVAILABLE,
                   "cannot reach the STS at %s: %s", srv_remote_endpoint (sts->remote),
                   local_error->message);
      return NULL;
    }
  status = soup_message_get_status (msg);
  if (!SOUP_STATUS_IS_SUCCESSFUL (status))
    {
      gboolean later;

      srv_remote_parse_error (answer, &code, &message);
      later = status >= 500 || status == 429 || g_strcmp0 (code, "Throttling") == 0;
      g_set_error (error, SRV_STS_ERROR,
                   later ? SRV_STS_ERROR_UNAVAILABLE : SRV_STS_ERROR_REJECTED,
                   "the STS at %s refused AssumeRole on %s: %u %s%s%s",
                   srv_remote_endpoint (sts->remote), role_arn, status,
                   code ? code : soup_message_get_reason_phrase (msg),
                   message && *message ? ": " : "", message ? message : "");
      return NULL;
    }
  data = g_bytes_get_data (answer, &len);
  return srv_sts_parse_response (data ? data : "", len, error);
}

SrvStsCredentials *
srv_sts_credentials_copy (const SrvStsCredentials *credentials)
{
  SrvStsCredentials *copy = g_new0 (SrvStsCredentials, 1);

  copy->access_key_id = g_strdup (credentials->access_key_id);
  copy->secret_access_key = g_strdup (credentials->secret_access_key);
  copy->session_token = g_strdup (credentials->session_token);
  copy->expiration = credentials->expiration;
  return copy;
}

void
srv_sts_credentials_free (SrvStsCredentials *credentials)
{
  if (credentials == NULL)
    return;
  g_free (credentials->access_key_id);
  if (credentials->secret_access_key)
    memset (credentials->secret_access_key, 0, strlen (credentials->secret_access_key));
  g_free (credentials->secret_access_key);
  g_free (credentials->session_token);
  g_free (credentials);
}
