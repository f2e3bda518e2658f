/* srv-config.c - magpied settings: one table, three sources
 *
 * Every setting is a long flag (`--data-dir`), an environment variable (`MAGPIED_DATA_DIR`)
 * and a key in the `[magpied]` group of the config file (`data-dir=`). A flag beats the
 * environment, which beats the file, which beats the built-in default.
 */
#include "config.h"

#include "srv-config.h"

#include "srv-autoscale.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SRV_CONFIG_GROUP "magpied"

typedef struct {
  const char *name;
  const char *arg;
  const char *description;
} SrvOptionSpec;

static const SrvOptionSpec option_specs[] = {
  { "listen", "HOST:PORT", "Address to serve the REST and S3 APIs on (default 127.0.0.1:8080)" },
  { "data-dir", "DIR", "Where the catalog and the embedded store live "
                       "(default $XDG_DATA_HOME/magpie/server)" },
  { "config", "FILE", "Read settings from this GKeyFile, group [magpied]" },
  { "database", "LOCATION", "The catalog and job queue: a SQLite file, or a PostgreSQL URI "
                            "postgresql://USER@HOST/DB that several nodes share "
                            "(default DATA-DIR/catalog.db)" },
  { "role", "all|api|worker", "all (default) serves the APIs and tags; api serves REST, S3 and "
                              "events only; worker tags, serving only /healthz, /readyz and "
                              "/metrics" },
  { "public-url", "URL", "The URL clients reach this server by (default from --listen)" },
  { "log-format", "logfmt|json", "Format of the log lines on stderr (default logfmt)" },
  { "bucket", "NAME", "The S3 bucket photos are stored in (default magpie)" },
  { "region", "REGION", "The region clients sign S3 requests for (default us-east-1)" },
  { "photo-model", "FILE", "ONNX classifier that tags photos (default: the bundled photos.onnx)" },
  { "digit-model", "FILE", "ONNX model behind /v1/predict/digit (default: the bundled digits.onnx)" },
  { "workers", "MIN:MAX", "Tagging workers the autoscaler keeps between (default 1:4)" },
  { "guests", "yes|no", "Hand out guest identities without an account (default yes)" },
  { "tag-rules", "FILE", "Per-label thresholds, aliases and priorities (GKeyFile)" },
  { "tag-min-confidence", "P", "Drop tags below this confidence, 0 to 1 (default 0.1)" },
  { "tag-top-k", "K", "Keep at most this many tags per photo, 1 to 20 (default 5)" },
  { "admin-access-key", "KEY", "Access key id of an S3 key pair that reaches the whole bucket "
                               "(16 to 128 of A-Z, 0-9; needs --admin-secret-key)" },
  { "admin-secret-key", "SECRET", "Its secret, at least 32 characters (prefer "
                                  "MAGPIED_ADMIN_SECRET_KEY or the config file to a flag)" },
  { "s3-events-secret", "SECRET", "Accept S3 event notifications on POST /v1/s3-events from "
                                  "senders with this bearer token (32 to 256 characters)" },
  { "worker-target", "N", "Queued jobs per worker the autoscaler aims for (default 8)" },
  { "worker-cooldown", "SECONDS", "How long the queue must stay short before workers are "
                                  "stopped (default 30)" },
  { "job-lease", "SECONDS", "How long a worker holds a leased job before another may take it "
                            "over: SECONDS plus a third of it per photo in the batch (default "
                            "30, so 40 s for one photo and 110 s for a batch of 8)" },
  { "s3-endpoint", "URL", "Keep photos in this remote S3-compatible service (AWS S3, MinIO, "
                          "Ceph RGW) instead of the embedded store" },
  { "s3-public-endpoint", "URL", "The remote store's URL as clients reach it "
                                 "(default --s3-endpoint)" },
  { "s3-region", "REGION", "The remote store's region (default --region)" },
  { "s3-access-key", "KEY", "Access key id of magpied's own key pair at the remote store" },
  { "s3-secret-key", "SECRET", "Its secret (prefer MAGPIED_S3_SECRET_KEY or the config file)" },
  { "s3-path-style", "yes|no", "Address the remote bucket as host/bucket (default yes) "
                               "or as bucket.host" },
  { "sts-endpoint", "URL", "The remote store's STS, for temporary client credentials "
                           "(default --s3-endpoint)" },
  { "sts-role-arn", "ARN", "The role AssumeRole hands out, narrowed to each identity's prefix "
                           "by a session policy" },
};

G_DEFINE_QUARK (srv-config-error-quark, srv_config_error)

/* g_set_str() arrives in GLib 2.76; Debian 12 has 2.74. */
static void
set_str (char **ptr, const char *value)
{
  char *copy = g_strdup (value);

  g_free (*ptr);
  *ptr = copy;
}

SrvConfig *
srv_config_new (void)
{
  SrvConfig *config = g_new0 (SrvConfig, 1);

  config->log_format = MP_LOG_FORMAT_LOGFMT;
  config->bucket = g_strdup ("magpie");
  config->region = g_strdup ("us-east-1");
  config->workers_min = 1;
  config->workers_max = 4;
  config->guests = TRUE;
  config->tag_min_confidence = 0.1;
  config->tag_top_k = 5;
  config->worker_target = SRV_AUTOSCALE_TARGET_DEFAULT;
  config->worker_cooldown_ms = SRV_AUTOSCALE_COOLDOWN_DEFAULT_MS;
  config->job_lease_ms = SRV_CONFIG_JOB_LEASE_DEFAULT_S * 1000;
  config->s3_path_style = TRUE;
  return config;
}

void
srv_config_free (SrvConfig *config)
{
  if (config == NULL)
    return;
  g_free (config->listen);
  g_free (config->listen_host);
  g_free (config->data_dir);
  g_free (config->database);
  g_free (config->config_file);
  g_free (config->public_url);
  g_free (config->bucket);
  g_free (config->region);
  g_free (config->photo_model);
  g_free (config->digit_model);
  g_free (config->tag_rules);
  g_free (config->admin_access_key);
  if (config->admin_secret_key)
    memset (config->admin_secret_key, 0, strlen (config->admin_secret_key));
  g_free (config->admin_secret_key);
  if (config->s3_events_secret)
    memset (config->s3_events_secret, 0, strlen (config->s3_events_secret));
  g_free (config->s3_events_secret);
  g_free (config->s3_endpoint);
  g_free (config->s3_public_endpoint);
  g_free (config->s3_region);
  g_free (config->s3_access_key);
  if (config->s3_secret_key)
    memset (config->s3_secret_key, 0, strlen (config->s3_secret_key));
  g_free (config->s3_secret_key);
  g_free (config->sts_endpoint);
  g_free (config->sts_role_arn);
  g_free (config);
}

SrvConfig *
srv_config_copy (const SrvConfig *config)
{
  SrvConfig *copy = g_memdup2 (config, sizeof *config);

  copy->listen = g_strdup (config->listen);
  copy->listen_host = g_strdup (config->listen_host);
  copy->data_dir = g_strdup (config->data_dir);
  copy->database = g_strdup (config->database);
  copy->config_file = g_strdup (config->config_file);
  copy->public_url = g_strdup (config->public_url);
  copy->bucket = g_strdup (config->bucket);
  copy->region = g_strdup (config->region);
  copy->photo_model = g_strdup (config->photo_model);
  copy->digit_model = g_strdup (config->digit_model);
  copy->tag_rules = g_strdup (config->tag_rules);
  copy->admin_access_key = g_strdup (config->admin_access_key);
  copy->admin_secret_key = g_strdup (config->admin_secret_key);
  copy->s3_events_secret = g_strdup (config->s3_events_secret);
  copy->s3_endpoint = g_strdup (config->s3_endpoint);
  copy->s3_public_endpoint = g_strdup (config->s3_public_endpoint);
  copy->s3_region = g_strdup (config->s3_region);
  copy->s3_access_key = g_strdup (config->s3_access_key);
  copy->s3_secret_key = g_strdup (config->s3_secret_key);
  copy->sts_endpoint = g_strdup (config->sts_endpoint);
  copy->sts_role_arn = g_strdup (config->sts_role_arn);
  return copy;
}

static char *
env_name (const char *option)
{
  g_autofree char *upper = g_ascii_strup (option, -1);

  g_strdelimit (upper, "-", '_');
  return g_strconcat ("MAGPIED_", upper, NULL);
}

/* Splits "host:port", "[v6]:port" or ":port". Returns FALSE and sets @error on anything else. */
gboolean
srv_config_parse_listen (const char  *text,
                         char       **host,
                         guint16     *port,
                         GError     **error)
{
  const char *colon;
  g_autofree char *h = NULL;
  char *end = NULL;
  guint64 p;

  g_return_val_if_fail (text != NULL, FALSE);

  if (text[0] == '[')
    {
      const char *close = strchr (text, ']');

      if (close == NULL || close[1] != ':')
        goto bad;
      h = g_strndup (text + 1, close - text - 1);
      colon = close + 1;
    }
  else
    {
      colon = strrchr (text, ':');
      if (colon == NULL || memchr (text, ':', colon - text) != NULL)
        goto bad;
      h = colon == text ? g_strdup ("0.0.0.0") : g_strndup (text, colon - text);
    }

  if (colon[1] == '\0')
    goto bad;
  errno = 0;
  p = g_ascii_strtoull (colon + 1, &end, 10);
  if (errno != 0 || *end != '\0' || p > 65535)
    goto bad;

  if (!g_hostname_is_ip_address (h) && g_strcmp0 (h, "localhost") != 0)
    {
      g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                   "--listen %s: '%s' is not an IP address (use 127.0.0.1, 0.0.0.0 or [::1])",
                   text, h);
      return FALSE;
    }
  if (g_strcmp0 (h, "localhost") == 0)
    set_str (&h, "127.0.0.1");

  *host = g_steal_pointer (&h);
  *port = (guint16) p;
  return TRUE;

bad:
  g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
               "--listen '%s' is not HOST:PORT (for example 127.0.0.1:8080)", text);
  return FALSE;
}

/* "MIN:MAX" or a single N for a fixed pool; 1 <= MIN <= MAX <= SRV_CONFIG_WORKERS_LIMIT. */
#define SRV_CONFIG_WORKERS_LIMIT 64  /* each worker holds a model's buffers; beyond this is a typo */

/* A target past this would never start a second worker on any real queue: a typo. */
#define SRV_CONFIG_WORKER_TARGET_LIMIT 100000
/* An hour of idle threads is already more than anyone means. */
#define SRV_CONFIG_WORKER_COOLDOWN_LIMIT_S 3600
/* A lease is how long a killed worker's jobs wait; a day is already no retry at all. Below
 * a second even an honest batch outlives its lease and runs twice. */
#define SRV_CONFIG_JOB_LEASE_MIN_S 1
#define SRV_CONFIG_JOB_LEASE_LIMIT_S 86400

gboolean
srv_config_parse_workers (const char  *text,
                          guint       *min,
                          guint       *max,
                          GError     **error)
{
  g_auto(GStrv) parts = g_strsplit (text, ":", -1);
  guint64 v[2];
  guint n = g_strv_length (parts);

  if (n < 1 || n > 2)
    goto bad;
  for (guint i = 0; i < n; i++)
    if (!g_ascii_string_to_unsigned (parts[i], 10, 1, SRV_CONFIG_WORKERS_LIMIT, &v[i], NULL))
      goto bad;
  if (n == 1)
    v[1] = v[0];
  if (v[0] > v[1])
    goto bad;
  *min = (guint) v[0];
  *max = (guint) v[1];
  return TRUE;

bad:
  g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
               "--workers '%s' is not MIN:MAX with 1 <= MIN <= MAX <= %d (for example 1:4)",
               text, SRV_CONFIG_WORKERS_LIMIT);
  return FALSE;
}

static gboolean
parse_bool (const char *value,
            gboolean   *out)
{
  static const char *yes[] = { "yes", "true", "on", "1" };
  static const char *no[] = { "no", "false", "off", "0" };

  for (gsize i = 0; i < G_N_ELEMENTS (yes); i++)
    {
      if (g_ascii_strcasecmp (value, yes[i]) == 0)
        return *out = TRUE, TRUE;
      if (g_ascii_strcasecmp (value, no[i]) == 0)
        return *out = FALSE, TRUE;
    }
  return FALSE;
}

static gboolean
apply_file_option (char       **ptr,
                   const char  *name,
                   const char  *value,
                   GError     **error)
{
  if (*value == '\0')
    {
      g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                   "--%s must not be empty", name);
      return FALSE;
    }
  g_free (*ptr);
  *ptr = g_canonicalize_filename (value, NULL);
  return TRUE;
}

/* An http:// or https:// URL with a host, for the remote store's endpoints. */
static gboolean
apply_url (char       **ptr,
           const char  *name,
           const char  *value,
           GError     **error)
{
  g_autoptr(GUri) uri = g_uri_parse (value, G_URI_FLAGS_NONE, NULL);

  if (uri == NULL || g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0' ||
      (g_strcmp0 (g_uri_get_scheme (uri), "http") != 0 &&
       g_strcmp0 (g_uri_get_scheme (uri), "https") != 0) ||
      g_uri_get_query (uri) != NULL || g_uri_get_userinfo (uri) != NULL)
    {
      g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                   "--%s '%s' is not an http:// or https:// URL of a host", name, value);
      return FALSE;
    }
  set_str (ptr, value);
  return TRUE;
}

/* Printable ASCII without spaces, 1 to @max bytes: keys, secrets, ARNs. The value stays out
 * of the message, since it may be a secret. */
static gboolean
apply_token (char       **ptr,
             const char  *name,
             const char  *value,
             gsize        max,
             GError     **error)
{
  gsize len = strlen (value);
  gboolean ok = len >= 1 && len <= max;

  for (const char *c = value; ok && *c; c++)
    ok = *c > ' ' && *c < 0x7f;
  if (!ok)
    {
      g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                   "--%s must be 1 to %" G_GSIZE_FORMAT " printable characters without spaces",
                   name, max);
      return FALSE;
    }
  set_str (ptr, value);
  return TRUE;
}

static gboolean
apply (SrvConfig   *config,
       const char  *name,
       const char  *value,
       GError     **error)
{
  if (strcmp (name, "listen") == 0)
    {
      g_autofree char *host = NULL;
      guint16 port;

      if (!srv_config_parse_listen (value, &host, &port, error))
        return FALSE;
      set_str (&config->listen, value);
      g_free (config->listen_host);
      config->listen_host = g_steal_pointer (&host);
      config->listen_port = port;
    }
  else if (strcmp (name, "data-dir") == 0)
    {
      if (*value == '\0')
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--data-dir must not be empty");
          return FALSE;
        }
      g_free (config->data_dir);
      config->data_dir = g_canonicalize_filename (value, NULL);
    }
  else if (strcmp (name, "config") == 0)
    set_str (&config->config_file, value);
  else if (strcmp (name, "database") == 0)
    {
      if (*value == '\0')
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--database must not be empty");
          return FALSE;
        }
      if (g_str_has_prefix (value, "postgres"))
        {
          /* Checked here so a typo stops the start with a hint, not a libpq error later. */
          if (!g_str_has_prefix (value, "postgresql://") && !g_str_has_prefix (value, "postgres://"))
            {
              g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                           "--database: a PostgreSQL location is a URI, "
                           "postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DBNAME");
              return FALSE;
            }
          set_str (&config->database, value);
        }
      else if (g_str_has_prefix (value, "sqlite:"))
        {
          g_autofree char *path = g_canonicalize_filename (value + strlen ("sqlite:"), NULL);

          g_free (config->database);
          config->database = g_strconcat ("sqlite:", path, NULL);
        }
      else
        {
          g_free (config->database);
          config->database = g_canonicalize_filename (value, NULL);
        }
    }
  else if (strcmp (name, "role") == 0)
    {
      if (strcmp (value, "all") == 0)
        config->role = SRV_ROLE_ALL;
      else if (strcmp (value, "api") == 0)
        config->role = SRV_ROLE_API;
      else if (strcmp (value, "worker") == 0)
        config->role = SRV_ROLE_WORKER;
      else
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--role '%s': use all, api or worker", value);
          return FALSE;
        }
    }
  else if (strcmp (name, "public-url") == 0)
    {
      g_autoptr(GUri) uri = g_uri_parse (value, G_URI_FLAGS_NONE, NULL);

      if (uri == NULL || (g_strcmp0 (g_uri_get_scheme (uri), "http") != 0 &&
                          g_strcmp0 (g_uri_get_scheme (uri), "https") != 0))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--public-url '%s' is not an http:// or https:// URL", value);
          return FALSE;
        }
      set_str (&config->public_url, value);
    }
  else if (strcmp (name, "log-format") == 0)
    {
      if (!mp_log_format_parse (value, &config->log_format))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--log-format '%s': use logfmt or json", value);
          return FALSE;
        }
    }
  else if (strcmp (name, "bucket") == 0)
    {
      /* S3's rules, checked here so a bad name stops the start, not the first upload. */
      gsize len = strlen (value);
      gboolean ok = len >= 3 && len <= 63 && g_ascii_isalnum (value[0]) &&
                    g_ascii_isalnum (value[len - 1]) && !g_hostname_is_ip_address (value);

      for (gsize i = 0; ok && i < len; i++)
        ok = g_ascii_islower (value[i]) || g_ascii_isdigit (value[i]) ||
             value[i] == '-' || (value[i] == '.' && value[i + 1] != '.');
      if (!ok)
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--bucket '%s' is not an S3 bucket name (3 to 63 of a-z, 0-9, '-', '.')",
                       value);
          return FALSE;
        }
      set_str (&config->bucket, value);
    }
  else if (strcmp (name, "region") == 0)
    {
      gboolean ok = *value != '\0' && strlen (value) <= 32;

      for (const char *c = value; ok && *c; c++)
        ok = g_ascii_isalnum (*c) || *c == '-';
      if (!ok)
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--region '%s' is not a region name (for example us-east-1)", value);
          return FALSE;
        }
      set_str (&config->region, value);
    }
  else if (strcmp (name, "photo-model") == 0)
    return apply_file_option (&config->photo_model, name, value, error);
  else if (strcmp (name, "digit-model") == 0)
    return apply_file_option (&config->digit_model, name, value, error);
  else if (strcmp (name, "tag-rules") == 0)
    return apply_file_option (&config->tag_rules, name, value, error);
  else if (strcmp (name, "workers") == 0)
    return srv_config_parse_workers (value, &config->workers_min, &config->workers_max, error);
  else if (strcmp (name, "guests") == 0)
    {
      if (!parse_bool (value, &config->guests))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--guests '%s': use yes or no", value);
          return FALSE;
        }
    }
  else if (strcmp (name, "tag-min-confidence") == 0)
    {
      char *end = NULL;
      double p = g_ascii_strtod (value, &end);

      if (end == value || *end != '\0' || !(p >= 0.0 && p <= 1.0))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--tag-min-confidence '%s' is not a number from 0 to 1", value);
          return FALSE;
        }
      config->tag_min_confidence = p;
    }
  else if (strcmp (name, "tag-top-k") == 0)
    {
      guint64 k;

      if (!g_ascii_string_to_unsigned (value, 10, 1, 20, &k, NULL))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--tag-top-k '%s' is not a whole number from 1 to 20", value);
          return FALSE;
        }
      config->tag_top_k = (guint) k;
    }
  else if (strcmp (name, "worker-target") == 0)
    {
      guint64 n;

      if (!g_ascii_string_to_unsigned (value, 10, 1, SRV_CONFIG_WORKER_TARGET_LIMIT, &n, NULL))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--worker-target '%s' is not a whole number from 1 to %d", value,
                       SRV_CONFIG_WORKER_TARGET_LIMIT);
          return FALSE;
        }
      config->worker_target = (guint) n;
    }
  else if (strcmp (name, "worker-cooldown") == 0)
    {
      char *end = NULL;
      double s = g_ascii_strtod (value, &end);

      if (end == value || *end != '\0' || !(s >= 0.0 && s <= SRV_CONFIG_WORKER_COOLDOWN_LIMIT_S))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--worker-cooldown '%s' is not a number of seconds from 0 to %d", value,
                       SRV_CONFIG_WORKER_COOLDOWN_LIMIT_S);
          return FALSE;
        }
      config->worker_cooldown_ms = (guint) (s * 1000.0 + 0.5);
    }
  else if (strcmp (name, "job-lease") == 0)
    {
      char *end = NULL;
      double s = g_ascii_strtod (value, &end);

      if (end == value || *end != '\0' ||
          !(s >= SRV_CONFIG_JOB_LEASE_MIN_S && s <= SRV_CONFIG_JOB_LEASE_LIMIT_S))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--job-lease '%s' is not a number of seconds from %d to %d", value,
                       SRV_CONFIG_JOB_LEASE_MIN_S, SRV_CONFIG_JOB_LEASE_LIMIT_S);
          return FALSE;
        }
      config->job_lease_ms = (guint) (s * 1000.0 + 0.5);
    }
  else if (strcmp (name, "admin-access-key") == 0)
    {
      gsize len = strlen (value);
      gboolean ok = len >= 16 && len <= 128;

      for (const char *c = value; ok && *c; c++)
        ok = g_ascii_isupper (*c) || g_ascii_isdigit (*c);
      /* "ASIA" is what temporary keys start with; an admin key must not look like one. */
      if (!ok || g_str_has_prefix (value, "ASIA"))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--admin-access-key: use 16 to 128 of A-Z and 0-9, not starting with ASIA");
          return FALSE;
        }
      set_str (&config->admin_access_key, value);
    }
  else if (strcmp (name, "admin-secret-key") == 0)
    {
      if (strlen (value) < 32 || strlen (value) > 256)
        {
          /* The value itself stays out of the message: it may be a real secret. */
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--admin-secret-key must be 32 to 256 characters long");
          return FALSE;
        }
      set_str (&config->admin_secret_key, value);
    }
  else if (strcmp (name, "s3-events-secret") == 0)
    {
      if (strlen (value) < 32 || strlen (value) > 256)
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--s3-events-secret must be 32 to 256 characters long");
          return FALSE;
        }
      set_str (&config->s3_events_secret, value);
    }
  else if (strcmp (name, "s3-endpoint") == 0)
    return apply_url (&config->s3_endpoint, name, value, error);
  else if (strcmp (name, "s3-public-endpoint") == 0)
    return apply_url (&config->s3_public_endpoint, name, value, error);
  else if (strcmp (name, "sts-endpoint") == 0)
    return apply_url (&config->sts_endpoint, name, value, error);
  else if (strcmp (name, "s3-region") == 0)
    {
      gboolean ok = *value != '\0' && strlen (value) <= 32;

      for (const char *c = value; ok && *c; c++)
        ok = g_ascii_isalnum (*c) || *c == '-';
      if (!ok)
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--s3-region '%s' is not a region name (for example us-east-1)", value);
          return FALSE;
        }
      set_str (&config->s3_region, value);
    }
  else if (strcmp (name, "s3-access-key") == 0)
    return apply_token (&config->s3_access_key, name, value, 128, error);
  else if (strcmp (name, "s3-secret-key") == 0)
    return apply_token (&config->s3_secret_key, name, value, 256, error);
  else if (strcmp (name, "sts-role-arn") == 0)
    {
      if (!g_str_has_prefix (value, "arn:"))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--sts-role-arn '%s' is not an ARN (arn:aws:iam::ACCOUNT:role/NAME)",
                       value);
          return FALSE;
        }
      return apply_token (&config->sts_role_arn, name, value, 2048, error);
    }
  else if (strcmp (name, "s3-path-style") == 0)
    {
      if (!parse_bool (value, &config->s3_path_style))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "--s3-path-style '%s': use yes or no", value);
          return FALSE;
        }
    }
  else
    g_assert_not_reached ();

  return TRUE;
}

static GOptionEntry *
build_entries (char **cli_values, gboolean *version)
{
  GOptionEntry *entries = g_new0 (GOptionEntry, G_N_ELEMENTS (option_specs) + 2);

  for (gsize i = 0; i < G_N_ELEMENTS (option_specs); i++)
    {
      entries[i].long_name = option_specs[i].name;
      entries[i].arg = G_OPTION_ARG_STRING;
      entries[i].arg_data = &cli_values[i];
      entries[i].description = option_specs[i].description;
      entries[i].arg_description = option_specs[i].arg;
    }
  entries[G_N_ELEMENTS (option_specs)] = (GOptionEntry) {
    "version", 'V', 0, G_OPTION_ARG_NONE, version, "Print the version and exit", NULL
  };
  return entries;
}

static GOptionContext *
build_context (GOptionEntry *entries)
{
  GOptionContext *context = g_option_context_new ("- the Magpie server");

  g_option_context_set_summary (context,
    "Serves the Magpie REST API (identities, credentials, photos, events) and an\n"
    "S3-compatible store on one port.");
  g_option_context_set_description (context,
    "Every option can also be set as an environment variable (--data-dir is\n"
    "MAGPIED_DATA_DIR) or as a key in the [magpied] group of the --config file.\n"
    "Flags win over the environment, which wins over the file.");
  g_option_context_add_main_entries (context, entries, NULL);
  return context;
}

const char *
srv_role_to_string (SrvRole role)
{
  static const char *names[] = { "all", "api", "worker" };

  g_return_val_if_fail ((guint) role < G_N_ELEMENTS (names), NULL);
  return names[role];
}

/* The --help text, for tests and for the README. */
char *
srv_config_help (void)
{
  g_autofree char **cli_values = g_new0 (char *, G_N_ELEMENTS (option_specs));
  gboolean version = FALSE;
  g_autofree GOptionEntry *entries = build_entries (cli_values, &version);
  g_autoptr(GOptionContext) context = build_context (entries);

  return g_option_context_get_help (context, TRUE, NULL);
}

/* Fills @config from @argv, @envp and the config file. Returns FALSE with
 * SRV_CONFIG_ERROR_USAGE for a bad command line, other codes for bad values.
 * Sets *argc to 0 when --version was asked for (the caller prints it). */
gboolean
srv_config_load (SrvConfig           *config,
                 int                 *argc,
                 char              ***argv,
                 const char * const  *envp,
                 GError             **error)
{
  g_autofree char **cli_values = g_new0 (char *, G_N_ELEMENTS (option_specs));
  gboolean version = FALSE;
  g_autofree GOptionEntry *entries = build_entries (cli_values, &version);
  g_autoptr(GOptionContext) context = build_context (entries);
  g_autoptr(GKeyFile) keyfile = NULL;
  g_autoptr(GError) local_error = NULL;
  const char *config_path;
  gboolean ok = TRUE;

  if (!g_option_context_parse (context, argc, argv, &local_error))
    {
      g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_USAGE, "%s", local_error->message);
      ok = FALSE;
      goto out;
    }
  if (version)
    {
      *argc = 0;
      goto out;
    }
  if (*argc > 1)
    {
      g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_USAGE,
                   "unexpected argument '%s'", (*argv)[1]);
      ok = FALSE;
      goto out;
    }

  {
    g_autofree char *default_data_dir =
      g_build_filename (g_get_user_data_dir (), "magpie", "server", NULL);

    if (!apply (config, "listen", "127.0.0.1:8080", error) ||
        !apply (config, "data-dir", default_data_dir, error))
      g_assert_not_reached ();
  }

  /* The config file's own path can come from the flag or the environment only. */
  config_path = cli_values[2];
  if (config_path == NULL)
    config_path = g_environ_getenv ((char **) envp, "MAGPIED_CONFIG");
  if (config_path != NULL)
    {
      keyfile = g_key_file_new ();
      if (!g_key_file_load_from_file (keyfile, config_path, G_KEY_FILE_NONE, &local_error))
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_FILE,
                       "cannot read config file %s: %s", config_path, local_error->message);
          ok = FALSE;
          goto out;
        }
      if (!g_key_file_has_group (keyfile, SRV_CONFIG_GROUP))
        g_clear_pointer (&keyfile, g_key_file_unref);
      else
        {
          g_auto(GStrv) keys = g_key_file_get_keys (keyfile, SRV_CONFIG_GROUP, NULL, NULL);

          for (char **k = keys; k && *k; k++)
            {
              gboolean known = FALSE;

              for (gsize i = 0; i < G_N_ELEMENTS (option_specs); i++)
                known |= strcmp (*k, option_specs[i].name) == 0;
              if (!known)
                {
                  g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                               "%s: unknown key '%s' in [" SRV_CONFIG_GROUP "]",
                               config_path, *k);
                  ok = FALSE;
                  goto out;
                }
            }
        }
    }

  for (gsize i = 0; i < G_N_ELEMENTS (option_specs); i++)
    {
      const char *name = option_specs[i].name;
      g_autofree char *var = env_name (name);
      g_autofree char *from_file = NULL;
      const char *value = cli_values[i];

      if (value == NULL)
        value = g_environ_getenv ((char **) envp, var);
      if (value == NULL && keyfile != NULL)
        value = from_file = g_key_file_get_string (keyfile, SRV_CONFIG_GROUP, name, NULL);
      if (value == NULL)
        continue;
      if (!apply (config, name, value, error))
        {
          ok = FALSE;
          goto out;
        }
    }

  if (ok && (config->admin_access_key == NULL) != (config->admin_secret_key == NULL))
    {
      g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                   "--admin-access-key and --admin-secret-key go together: give both or neither");
      ok = FALSE;
    }
  if (ok && config->s3_endpoint != NULL &&
      (config->s3_access_key == NULL || config->s3_secret_key == NULL))
    {
      g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                   "--s3-endpoint needs magpied's key pair there: --s3-access-key and "
                   "--s3-secret-key");
      ok = FALSE;
    }
  if (ok && config->s3_endpoint == NULL &&
      (config->s3_access_key || config->s3_secret_key || config->s3_region ||
       config->s3_public_endpoint || config->sts_endpoint || config->sts_role_arn))
    {
      g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                   "the --s3-* and --sts-* settings describe a remote store: give its "
                   "--s3-endpoint too");
      ok = FALSE;
    }

out:
  for (gsize i = 0; i < G_N_ELEMENTS (option_specs); i++)
    g_free (cli_values[i]);
  return ok;
}
