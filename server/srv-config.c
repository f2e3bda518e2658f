/* srv-config.c - magpied settings: one table, three sources
 *
 * Every setting is a long flag (`--data-dir`), an environment variable (`MAGPIED_DATA_DIR`)
 * and a key in the `[magpied]` group of the config file (`data-dir=`). A flag beats the
 * environment, which beats the file, which beats the built-in default.
 */
#include "config.h"

#include "srv-config.h"

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
  { "public-url", "URL", "The URL clients reach this server by (default from --listen)" },
  { "log-format", "logfmt|json", "Format of the log lines on stderr (default logfmt)" },
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
  g_free (config->config_file);
  g_free (config->public_url);
  g_free (config);
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

out:
  for (gsize i = 0; i < G_N_ELEMENTS (option_specs); i++)
    g_free (cli_values[i]);
  return ok;
}
