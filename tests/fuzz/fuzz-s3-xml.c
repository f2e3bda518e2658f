/* fuzz-s3-xml.c - the XML request bodies of the S3 front: CompleteMultipartUpload and
 * DeleteObjects (srv_s3_parse_complete, srv_s3_parse_delete)
 *
 * The first byte picks the parser, the rest is the body. Properties: a parsed
 * CompleteMultipartUpload lists 1..10000 parts with numbers in range and an ETag each; a
 * parsed Delete lists 1..1000 non-empty keys; a refusal is MalformedXML (400).
 */
#include "config.h"

#include "fuzz-common.h"

#include "srv-s3-proto.h"
#include "srv-store.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_logging ();
  return 0;
}

static void
check_refusal (const GError *error)
{
  guint status = 0;

  fuzz_check (error != NULL, "refused without a reason");
  fuzz_check (g_error_matches (error, SRV_S3_ERROR, SRV_S3_ERROR_MALFORMED_XML),
              "refused with %s", error->message);
  srv_s3_error_code (error, &status);
  fuzz_check (status == 400, "MalformedXML answers %u", status);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  const char *xml = (const char *) data + 1;
  gsize len = size > 0 ? size - 1 : 0;

  if (size == 0)
    return 0;
  if (data[0] & 1)
    {
      g_autoptr(GPtrArray) etags = NULL;
      g_autoptr(GArray) parts = srv_s3_parse_complete (xml, len, &etags, &error);

      if (parts == NULL)
        {
          check_refusal (error);
          return 0;
        }
      fuzz_check (parts->len >= 1 && parts->len <= SRV_STORE_MAX_PART_NUMBER, "%u parts",
                  parts->len);
      fuzz_check (etags->len == parts->len, "%u etags for %u parts", etags->len, parts->len);
      for (guint i = 0; i < parts->len; i++)
        {
          const SrvCompletedPart *p = &g_array_index (parts, SrvCompletedPart, i);

          fuzz_check (p->number >= 1 && p->number <= SRV_STORE_MAX_PART_NUMBER,
                      "part number %u", p->number);
          fuzz_check (p->etag != NULL, "part %u has no etag", p->number);
        }
    }
  else
    {
      gboolean quiet = FALSE;
      g_autoptr(GPtrArray) keys = srv_s3_parse_delete (xml, len, &quiet, &error);

      if (keys == NULL)
        {
          check_refusal (error);
          return 0;
        }
      fuzz_check (keys->len >= 1 && keys->len <= SRV_STORE_LIST_MAX, "%u keys", keys->len);
      for (guint i = 0; i < keys->len; i++)
        fuzz_check (keys->pdata[i] != NULL && *(char *) keys->pdata[i] != '\0',
                    "key %u is empty", i);
    }
  return 0;
}
