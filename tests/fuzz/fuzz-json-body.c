/* fuzz-json-body.c - JSON request bodies of the REST API as the handlers read them
 *
 * The body goes through srv_http_parse_json() (what srv_http_read_json() does with a request),
 * then through the members each endpoint takes, with the same validators: POST /v1/credentials
 * (identity_id, secret, duration_seconds), /v1/accounts and /v1/sessions (username,
 * password), /v1/photos (key) and /v1/predict/digit (pixels). Properties: a refusal carries a
 * reason and a 400 or 413; a required member that was accepted is there; accepted pixels are
 * 0..255.
 */
#include "config.h"

#include "fuzz-common.h"

#include <libsoup/soup.h>

#include "srv-http.h"
#include "srv-password.h"
#include "srv-predict.h"
#include "srv-store.h"
#include "srv-token.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_logging ();
  return 0;
}

static const char *
required_string (JsonObject *o,
                 const char *name)
{
  g_autoptr(GError) error = NULL;
  const char *value = NULL;

  if (!srv_http_json_string (o, name, TRUE, &value, &error))
    {
      fuzz_check (error != NULL && value == NULL, "\"%s\" refused without a reason", name);
      return NULL;
    }
  fuzz_check (value != NULL, "required \"%s\" accepted as absent", name);
  return value;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) o = NULL;
  const char *s;
  guint status = 0;
  gint64 lifetime = SRV_TOKEN_DEFAULT_LIFETIME_S;
  JsonNode *pixels;

  o = srv_http_parse_json ((const char *) data, size, &status, &error);
  if (o == NULL)
    {
      fuzz_check (error != NULL, "refused without a reason");
      fuzz_check (status == SOUP_STATUS_BAD_REQUEST ||
                  status == SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "refused with %u", status);
      return 0;
    }

  /* POST /v1/credentials */
  if ((s = required_string (o, "identity_id")) != NULL)
    srv_identity_id_is_valid (s);
  required_string (o, "secret");
  srv_http_json_int (o, "duration_seconds", &lifetime, NULL);

  /* POST /v1/accounts, /v1/sessions */
  if ((s = required_string (o, "username")) != NULL)
    srv_username_check (s, NULL);
  if ((s = required_string (o, "password")) != NULL)
    srv_password_check (s, NULL);

  /* POST /v1/photos */
  if ((s = required_string (o, "key")) != NULL)
    srv_store_check_key (s, strlen (s), NULL);

  /* POST /v1/predict/digit */
  pixels = json_object_get_member (o, "pixels");
  if (pixels != NULL && JSON_NODE_HOLDS_ARRAY (pixels))
    {
      float out[28 * 28];

      if (srv_predict_digit_pixels (json_node_get_array (pixels), out, G_N_ELEMENTS (out), NULL))
        for (guint i = 0; i < G_N_ELEMENTS (out); i++)
          fuzz_check (out[i] >= 0.0f && out[i] <= 255.0f, "pixel %u = %g", i, out[i]);
    }
  return 0;
}
