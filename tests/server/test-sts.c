/* test-sts.c - the STS client's pure parts: the session policy we send, the AssumeRole body,
 * the response parser, and the XML tree under them
 *
 * The policy is checked twice: as a document (exact actions, resources, condition) and by
 * evaluating it the way IAM does for an Allow-only policy (action match, resource wildcard
 * match, StringLike on s3:prefix), since moto stores session policies without enforcing them.
 */
#include "config.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "srv-sts.h"
#include "srv-xml.h"

#define BUCKET "magpie-photos"
#define ID     "BgMRQ-Kz1HqHyv4BofPJJw"
#define PREFIX "users/" ID "/"

/* IAM's wildcard match: '*' any run, '?' any one character, case-sensitive. */
static gboolean
iam_like (const char *pattern,
          const char *value)
{
  if (*pattern == '\0')
    return *value == '\0';
  if (*pattern == '*')
    return iam_like (pattern + 1, value) || (*value != '\0' && iam_like (pattern, value + 1));
  if (*value != '\0' && (*pattern == '?' || *pattern == *value))
    return iam_like (pattern + 1, value + 1);
  return FALSE;
}

static gboolean
node_matches (JsonNode   *node,
              const char *value)
{
  if (JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *a = json_node_get_array (node);

      for (guint i = 0; i < json_array_get_length (a); i++)
        if (iam_like (json_array_get_string_element (a, i), value))
          return TRUE;
      return FALSE;
    }
  return iam_like (json_node_get_string (node), value);
}

/* Whether @policy allows @action on @resource; @prefix is the request's s3:prefix (ListBucket)
 * or NULL when the request has none. Only what our policy uses: Allow, Action, Resource and
 * a StringLike condition; anything else in the document fails the test. */
static gboolean
allows (const char *policy,
        const char *action,
        const char *resource,
        const char *prefix)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonArray *statements;

  json_parser_load_from_data (parser, policy, -1, &error);
  g_assert_no_error (error);
  statements = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)),
                                             "Statement");
  for (guint i = 0; i < json_array_get_length (statements); i++)
    {
      JsonObject *st = json_array_get_object_element (statements, i);
      JsonObject *condition;
      gboolean ok = TRUE;

      g_assert_cmpstr (json_object_get_string_member (st, "Effect"), ==, "Allow");
      if (!node_matches (json_object_get_member (st, "Action"), action) ||
          !node_matches (json_object_get_member (st, "Resource"), resource))
        continue;
      condition = json_object_has_member (st, "Condition")
                  ? json_object_get_object_member (st, "Condition") : NULL;
      if (condition != NULL)
        {
          JsonObject *like;

          g_assert_cmpuint (json_object_get_size (condition), ==, 1);
          like = json_object_get_object_member (condition, "StringLike");
          g_assert_nonnull (like);
          g_assert_cmpuint (json_object_get_size (like), ==, 1);
          ok = prefix != NULL && node_matches (json_object_get_member (like, "s3:prefix"), prefix);
        }
      if (ok)
        return TRUE;
    }
  return FALSE;
}

static void
test_policy_document (void)
{
  g_autofree char *policy = srv_sts_session_policy ("aws", BUCKET, PREFIX);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonObject *root;
  JsonArray *statements;
  JsonObject *objects;
  JsonObject *list;
  JsonArray *actions;
  JsonArray *prefixes;
  static const char *expected_actions[] = {
    "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
  };

  /* AWS packs session policies into 2048 bytes; ours must fit with room to spare. */
  g_assert_cmpuint (strlen (policy), <, 1024);
  json_parser_load_from_data (parser, policy, -1, &error);
  g_assert_no_error (error);
  root = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (root, "Version"), ==, "2012-10-17");
  statements = json_object_get_array_member (root, "Statement");
  g_assert_cmpuint (json_array_get_length (statements), ==, 2);

  objects = json_array_get_object_element (statements, 0);
  g_assert_cmpstr (json_object_get_string_member (objects, "Effect"), ==, "Allow");
  g_assert_cmpstr (json_object_get_string_member (objects, "Resource"), ==,
                   "arn:aws:s3:::" BUCKET "/" PREFIX "*");
  actions = json_object_get_array_member (objects, "Action");
  g_assert_cmpuint (json_array_get_length (actions), ==, G_N_ELEMENTS (expected_actions));
  for (guint i = 0; i < G_N_ELEMENTS (expected_actions); i++)
    g_assert_cmpstr (json_array_get_string_element (actions, i), ==, expected_actions[i]);
  g_assert_false (json_object_has_member (objects, "Condition"));

  list = json_array_get_object_element (statements, 1);
  g_assert_cmpstr (json_object_get_string_member (list, "Effect"), ==, "Allow");
  g_assert_cmpstr (json_object_get_string_member (list, "Action"), ==, "s3:ListBucket");
  g_assert_cmpstr (json_object_get_string_member (list, "Resource"), ==, "arn:aws:s3:::" BUCKET);
  prefixes = json_object_get_array_member (
    json_object_get_object_member (json_object_get_object_member (list, "Condition"),
                                   "StringLike"), "s3:prefix");
  g_assert_cmpuint (json_array_get_length (prefixes), ==, 2);
  g_assert_cmpstr (json_array_get_string_element (prefixes, 0), ==, PREFIX);
  g_assert_cmpstr (json_array_get_string_element (prefixes, 1), ==, PREFIX "*");

  {
    /* Another partition names its own S3 ARNs. */
    g_autofree char *cn = srv_sts_session_policy ("aws-cn", BUCKET, PREFIX);

    g_assert_nonnull (strstr (cn, "\"arn:aws-cn:s3:::" BUCKET "/" PREFIX "*\""));
    g_assert_null (strstr (cn, "arn:aws:"));
  }
}

static void
test_policy_semantics (void)
{
  g_autofree char *p = srv_sts_session_policy ("aws", BUCKET, PREFIX);
  const char *own = "arn:aws:s3:::" BUCKET "/" PREFIX "0f15cf.jpg";
  const char *other = "arn:aws:s3:::" BUCKET "/users/someone-else/0f15cf.jpg";
  /* An id that extends ours: the trailing '/' keeps it out. */
  const char *longer = "arn:aws:s3:::" BUCKET "/users/" ID "x/0f15cf.jpg";
  const char *bucket = "arn:aws:s3:::" BUCKET;

  g_assert_true (allows (p, "s3:PutObject", own, NULL));
  g_assert_true (allows (p, "s3:GetObject", own, NULL));
  g_assert_true (allows (p, "s3:DeleteObject", own, NULL));
  g_assert_true (allows (p, "s3:AbortMultipartUpload", own, NULL));
  g_assert_true (allows (p, "s3:ListMultipartUploadParts", own, NULL));
  g_assert_true (allows (p, "s3:PutObject",
                         "arn:aws:s3:::" BUCKET "/" PREFIX "nested/deeper.png", NULL));

  g_assert_false (allows (p, "s3:PutObject", other, NULL));
  g_assert_false (allows (p, "s3:GetObject", other, NULL));
  g_assert_false (allows (p, "s3:DeleteObject", other, NULL));
  g_assert_false (allows (p, "s3:PutObject", longer, NULL));
  g_assert_false (allows (p, "s3:PutObject", "arn:aws:s3:::" BUCKET "/outside.jpg", NULL));
  g_assert_false (allows (p, "s3:PutObject", "arn:aws:s3:::other-bucket/" PREFIX "x", NULL));
  g_assert_false (allows (p, "s3:PutObjectAcl", own, NULL));
  g_assert_false (allows (p, "s3:DeleteBucket", bucket, NULL));
  g_assert_false (allows (p, "s3:PutBucketPolicy", bucket, NULL));

  g_assert_true (allows (p, "s3:ListBucket", bucket, PREFIX));
  g_assert_true (allows (p, "s3:ListBucket", bucket, PREFIX "2024/"));
  g_assert_false (allows (p, "s3:ListBucket", bucket, NULL));
  g_assert_false (allows (p, "s3:ListBucket", bucket, ""));
  g_assert_false (allows (p, "s3:ListBucket", bucket, "users/"));
  g_assert_false (allows (p, "s3:ListBucket", bucket, "users/someone-else/"));
  g_assert_false (allows (p, "s3:ListBucket", bucket, "users/" ID "x/"));
}

static void
test_partition_and_session_name (void)
{
  static const struct { const char *arn; const char *partition; } partitions[] = {
    { "arn:aws:iam::123456789012:role/magpie-uploader", "aws" },
    { "arn:aws-cn:iam::123456789012:role/magpie", "aws-cn" },
    { "arn:aws-us-gov:iam::123456789012:role/magpie", "aws-us-gov" },
    { "arn:minio:iam:::role/dummy", "aws" },
    { "not-an-arn", "aws" },
    { "", "aws" },
  };
  g_autofree char *long_id = g_strnfill (80, 'a');
  g_autofree char *name = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (partitions); i++)
    {
      g_autofree char *p = srv_sts_partition (partitions[i].arn);

      g_assert_cmpstr (p, ==, partitions[i].partition);
    }

  name = srv_sts_session_name (ID);
  g_assert_cmpstr (name, ==, ID);
  g_clear_pointer (&name, g_free);
  name = srv_sts_session_name ("a");
  g_assert_cmpstr (name, ==, "magpie-a");
  g_clear_pointer (&name, g_free);
  name = srv_sts_session_name (long_id);
  g_assert_cmpuint (strlen (name), ==, 64);
  g_clear_pointer (&name, g_free);
  name = srv_sts_session_name ("a b/c#d");
  g_assert_cmpstr (name, ==, "abcd");
}

static void
test_assume_role_body (void)
{
  g_autofree char *policy = srv_sts_session_policy ("aws", BUCKET, PREFIX);
  g_autofree char *body = srv_sts_assume_role_body ("arn:aws:iam::123456789012:role/up", ID,
                                                    policy, 900);
  g_autoptr(GHashTable) params = NULL;
  g_autoptr(GError) error = NULL;

  /* Form-encoded and nothing else: no raw JSON punctuation or spaces on the wire. */
  g_assert_null (strpbrk (body, " {}\"[]:/"));
  params = g_uri_parse_params (body, -1, "&", G_URI_PARAMS_WWW_FORM, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_hash_table_size (params), ==, 6);
  g_assert_cmpstr (g_hash_table_lookup (params, "Action"), ==, "AssumeRole");
  g_assert_cmpstr (g_hash_table_lookup (params, "Version"), ==, "2011-06-15");
  g_assert_cmpstr (g_hash_table_lookup (params, "RoleArn"), ==, "arn:aws:iam::123456789012:role/up");
  g_assert_cmpstr (g_hash_table_lookup (params, "RoleSessionName"), ==, ID);
  g_assert_cmpstr (g_hash_table_lookup (params, "DurationSeconds"), ==, "900");
  g_assert_cmpstr (g_hash_table_lookup (params, "Policy"), ==, policy);
}

static const char good_response[] =
  "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
  "  <AssumeRoleResult>\n"
  "    <SourceIdentity>DevUser123</SourceIdentity>\n"
  "    <AssumedRoleUser>\n"
  "      <Arn>arn:aws:sts::123456789012:assumed-role/demo/John</Arn>\n"
  "      <AssumedRoleId>ARO123EXAMPLE123:John</AssumedRoleId>\n"
  "    </AssumedRoleUser>\n"
  "    <Credentials>\n"
  "      <SessionToken>\n   AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW\n"
  "      </SessionToken>\n"
  "      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>\n"
  "      <Expiration>2019-11-09T13:34:41Z</Expiration>\n"
  "      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
  "    </Credentials>\n"
  "    <PackedPolicySize>8</PackedPolicySize>\n"
  "  </AssumeRoleResult>\n"
  "  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>"
  "</ResponseMetadata>\n"
  "</AssumeRoleResponse>\n";

static void
test_parse_response (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvStsCredentials) creds = srv_sts_parse_response (good_response,
                                                               strlen (good_response), &error);
  g_autoptr(SrvStsCredentials) copy = NULL;
  static const char *bad[] = {
    "",
    "not xml at all",
    "<AssumeRoleResponse><AssumeRoleResult/></AssumeRoleResponse>",
    "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>",
    /* one field missing, then an unparsable expiration */
    "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId>"
    "<SecretAccessKey>S</SecretAccessKey><Expiration>2019-11-09T13:34:41Z</Expiration>"
    "</Credentials></AssumeRoleResult></AssumeRoleResponse>",
    "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId>"
    "<SecretAccessKey>S</SecretAccessKey><SessionToken>T</SessionToken>"
    "<Expiration>tomorrow</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>",
    "<AssumeRoleResponse><AssumeRoleResult><Credentials>",
  };

  g_assert_no_error (error);
  g_assert_cmpstr (creds->access_key_id, ==, "ASIAIOSFODNN7EXAMPLE");
  g_assert_cmpstr (creds->secret_access_key, ==, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
  g_assert_cmpstr (creds->session_token, ==,
                   "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW");
  g_assert_cmpint (creds->expiration, ==, 1573306481);
  copy = srv_sts_credentials_copy (creds);
  g_assert_cmpstr (copy->session_token, ==, creds->session_token);
  g_assert_cmpint (copy->expiration, ==, creds->expiration);

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) e = NULL;
      g_autoptr(SrvStsCredentials) c = srv_sts_parse_response (bad[i], strlen (bad[i]), &e);

      g_assert_null (c);
      g_assert_error (e, SRV_STS_ERROR, SRV_STS_ERROR_MALFORMED);
    }
}

static void
test_xml_tree (void)
{
  const char *doc = "<?xml version=\"1.0\"?>\n<s3:ListBucketResult xmlns:s3=\"urn:x\">"
                    "<Name>b</Name><Contents><Key>a &amp; b</Key></Contents>"
                    "<Contents><Key><![CDATA[<raw>]]></Key></Contents></s3:ListBucketResult>";
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvXmlNode) root = srv_xml_parse (doc, strlen (doc), &error);
  g_autoptr(GString) deep = g_string_new (NULL);
  SrvXmlNode *second;

  g_assert_no_error (error);
  g_assert_cmpstr (root->name, ==, "ListBucketResult");
  g_assert_cmpstr (srv_xml_child_text (root, "Name"), ==, "b");
  g_assert_cmpuint (root->children->len, ==, 3);
  g_assert_cmpstr (srv_xml_child_text (srv_xml_child (root, "Contents"), "Key"), ==, "a & b");
  second = g_ptr_array_index (root->children, 2);
  g_assert_cmpstr (srv_xml_child_text (second, "Key"), ==, "<raw>");
  g_assert_null (srv_xml_child (root, "Missing"));
  g_assert_null (srv_xml_child_text (root, "Missing"));

  /* Depth is bounded, so a hostile document cannot recurse us out of stack. */
  for (int i = 0; i < SRV_XML_MAX_DEPTH + 1; i++)
    g_string_append (deep, "<a>");
  for (int i = 0; i < SRV_XML_MAX_DEPTH + 1; i++)
    g_string_append (deep, "</a>");
  g_assert_null (srv_xml_parse (deep->str, deep->len, &error));
  g_assert_error (error, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT);
  g_clear_error (&error);
  g_assert_null (srv_xml_parse ("<a></b>", 7, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_null (srv_xml_parse ("", 0, &error));
  g_assert_nonnull (error);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/sts/policy-document", test_policy_document);
  g_test_add_func ("/srv/sts/policy-semantics", test_policy_semantics);
  g_test_add_func ("/srv/sts/partition-and-session-name", test_partition_and_session_name);
  g_test_add_func ("/srv/sts/assume-role-body", test_assume_role_body);
  g_test_add_func ("/srv/sts/parse-response", test_parse_response);
  g_test_add_func ("/srv/sts/xml-tree", test_xml_tree);
  return g_test_run ();
}
