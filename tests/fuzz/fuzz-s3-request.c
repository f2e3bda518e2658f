/* fuzz-s3-request.c - the S3 front's request parsing: raw query, path-style routing and object
 * keys, x-amz-copy-source, Range, the authorisation of a prefix-bound identity, and the XML
 * that echoes keys back
 *
 * Input: lines "METHOD", "/raw/path", "raw query", "copy source", "Range value".
 * Properties: a routed key is a valid store key; a prefix-bound identity is allowed only keys
 * under its prefix in the served bucket; a resolved Range lies inside the object; and every
 * key, echoed in an error or a listing, reads back unchanged through a strict XML 1.0 parser
 * (libxml2, as botocore's expat and the Java SDK's parsers are).
 */
#include "config.h"

#include "fuzz-common.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "srv-s3-auth.h"
#include "srv-s3-proto.h"
#include "srv-store.h"

#define FUZZ_BUCKET "magpie"
#define FUZZ_PREFIX "users/fuzz/"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_logging ();
  xmlInitParser ();
  return 0;
}

/* The text of the first element @name in @xml, or NULL when the document is not XML 1.0. */
static char *
xml_text (const char *xml,
          const char *name)
{
  xmlDocPtr doc = xmlReadMemory (xml, (int) strlen (xml), NULL, "UTF-8",
                                 XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  char *out = NULL;
  GQueue todo = G_QUEUE_INIT;

  if (doc == NULL)
    return NULL;
  g_queue_push_tail (&todo, xmlDocGetRootElement (doc));
  while (out == NULL && !g_queue_is_empty (&todo))
    {
      xmlNodePtr node = g_queue_pop_head (&todo);

      for (; node != NULL; node = node->next)
        {
          if (node->type != XML_ELEMENT_NODE)
            continue;
          if (strcmp ((const char *) node->name, name) == 0)
            {
              xmlChar *content = xmlNodeGetContent (node);

              out = g_strdup ((const char *) content);
              xmlFree (content);
              break;
            }
          g_queue_push_tail (&todo, node->children);
        }
    }
  g_queue_clear (&todo);
  xmlFreeDoc (doc);
  return out;
}

/* C0 controls other than tab, LF and CR cannot appear in XML 1.0 at all, not even as
 * references; S3 lists such keys only with encoding-type=url, and so do we. */
static gboolean
xml10_representable (const char *s)
{
  for (; *s; s++)
    if ((guchar) *s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
      return FALSE;
  return TRUE;
}

static void
check_key_echo (const char *key)
{
  g_autofree char *error_xml = srv_s3_xml_error ("NoSuchKey", "no such key", key, "ID");
  g_autoptr(GPtrArray) contents = g_ptr_array_new ();
  g_autoptr(GPtrArray) prefixes = g_ptr_array_new ();
  SrvObjectInfo info = { (char *) key, 1, (char *) "\"etag\"", NULL, NULL, NULL, NULL, 0 };
  SrvListResult result = { contents, prefixes, FALSE, NULL };

  g_ptr_array_add (contents, &info);
  if (xml10_representable (key))
    {
      g_autofree char *listing = srv_s3_xml_list_objects (&result, TRUE, FUZZ_BUCKET, NULL, NULL,
                                                          1000, NULL, NULL, FALSE);
      g_autofree char *resource = xml_text (error_xml, "Resource");
      g_autofree char *listed = xml_text (listing, "Key");

      fuzz_check (g_strcmp0 (resource, key) == 0, "error Resource reads back as '%s', not '%s'",
                  resource ? resource : "(not XML)", key);
      fuzz_check (g_strcmp0 (listed, key) == 0, "listed Key reads back as '%s', not '%s'",
                  listed ? listed : "(not XML)", key);
    }
  {
    g_autofree char *listing = srv_s3_xml_list_objects (&result, TRUE, FUZZ_BUCKET, NULL, NULL,
                                                        1000, NULL, NULL, TRUE);
    g_autofree char *listed = xml_text (listing, "Key");
    g_autofree char *decoded = listed ? g_uri_unescape_string (listed, NULL) : NULL;

    fuzz_check (g_strcmp0 (decoded, key) == 0, "url-encoded Key reads back as '%s', not '%s'",
                listed ? listed : "(not XML)", key);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  FuzzFields f;
  g_autoptr(GHashTable) query = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  g_autofree char *copy_bucket = NULL;
  g_autofree char *copy_key = NULL;
  const char *copy_source, *range;
  SrvCredentials creds = { (char *) "fuzz", SRV_IDENTITY_GUEST, NULL, NULL, NULL,
                           (char *) FUZZ_PREFIX, 0, 0 };
  SrvS3Route route;

  fuzz_fields_split (&f, data, size, 5);
  query = srv_s3_parse_query (fuzz_field (&f, 2));
  path = fuzz_field (&f, 1)[0] == '/' ? g_strdup (fuzz_field (&f, 1))
                                      : g_strconcat ("/", fuzz_field (&f, 1), NULL);
  copy_source = fuzz_field (&f, 3);
  range = fuzz_field (&f, 4);

  if (*copy_source != '\0' &&
      srv_s3_parse_copy_source (copy_source, &copy_bucket, &copy_key, NULL))
    fuzz_check (srv_store_check_key (copy_key, strlen (copy_key), NULL),
                "copy source key '%s' is not a store key", copy_key);

  if (srv_s3_route (*fuzz_field (&f, 0) ? fuzz_field (&f, 0) : "GET", path, query,
                    *copy_source != '\0', &route, &error))
    {
      const char *list_prefix = query ? g_hash_table_lookup (query, "prefix") : NULL;

      if (route.key != NULL)
        {
          fuzz_check (srv_store_check_key (route.key, strlen (route.key), NULL),
                      "routed key '%s' is not a store key", route.key);
          check_key_echo (route.key);
        }
      if (srv_s3_authorize (&creds, FUZZ_BUCKET, &route, list_prefix, copy_bucket, copy_key,
                            NULL) &&
          route.op != SRV_S3_OP_LIST_BUCKETS)
        {
          fuzz_check (g_strcmp0 (route.bucket, FUZZ_BUCKET) == 0,
                      "bucket '%s' authorised", route.bucket);
          if (route.key != NULL && route.op != SRV_S3_OP_DELETE_OBJECTS)
            fuzz_check (g_str_has_prefix (route.key, FUZZ_PREFIX),
                        "key '%s' authorised outside " FUZZ_PREFIX, route.key);
          if (route.op == SRV_S3_OP_COPY_OBJECT)
            fuzz_check (g_str_has_prefix (copy_key, FUZZ_PREFIX),
                        "copy source '%s' authorised outside " FUZZ_PREFIX, copy_key);
          if (route.op == SRV_S3_OP_LIST_OBJECTS || route.op == SRV_S3_OP_LIST_OBJECTS_V2 ||
              route.op == SRV_S3_OP_LIST_UPLOADS)
            fuzz_check (list_prefix != NULL && g_str_has_prefix (list_prefix, FUZZ_PREFIX),
                        "listing of '%s' authorised", list_prefix ? list_prefix : "(all)");
        }
      srv_s3_route_clear (&route);
    }
  else
    {
      guint status = 0;

      fuzz_check (error != NULL, "routing failed without a reason");
      srv_s3_error_code (error, &status);
      fuzz_check (status >= 400 && status < 600, "routing failure answers %u", status);
    }

  if (*range != '\0')
    {
      static const gint64 sizes[] = { 0, 1, 1000, G_MAXINT64 };

      for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
        {
          SrvByteRange r = { -1, -1 };

          if (srv_store_parse_range (range, sizes[i], &r, NULL))
            fuzz_check (r.first >= 0 && r.first <= r.last && r.last < sizes[i],
                        "Range '%s' of %" G_GINT64_FORMAT " bytes resolves to %" G_GINT64_FORMAT
                        "-%" G_GINT64_FORMAT, range, sizes[i], r.first, r.last);
        }
    }
  fuzz_fields_clear (&f);
  return 0;
}
