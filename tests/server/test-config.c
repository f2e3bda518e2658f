/* test-config.c - magpied settings: listen parsing, precedence flag > env > file > default */
#include "config.h"

#include <glib/gstdio.h>

#include "srv-config.h"
#include "srv-db.h"
#include "srv-workers.h"

static void
test_parse_listen (void)
{
  static const struct {
    const char *text;
    const char *host;
    guint16 port;
  } good[] = {
    { "127.0.0.1:8080", "127.0.0.1", 8080 },
    { "0.0.0.0:0", "0.0.0.0", 0 },
    { ":9000", "0.0.0.0", 9000 },
    { "[::1]:443", "::1", 443 },
    { "localhost:80", "127.0.0.1", 80 },
  };
  static const char *bad[] = {
    "", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
    "127.0.0.1:80x", "::1:80", "[::1]80", "example.com:80", "[::1",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autofree char *host = NULL;
      g_autoptr(GError) error = NULL;
      guint16 port = 1;

      g_assert_true (srv_config_parse_listen (good[i].text, &host, &port, &error));
      g_assert_no_error (error);
      g_assert_cmpstr (host, ==, good[i].host);
      g_assert_cmpuint (port, ==, good[i].port);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *host = NULL;
      g_autoptr(GError) error = NULL;
      guint16 port = 1;

      g_assert_false (srv_config_parse_listen (bad[i], &host, &port, &error));
      g_assert_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID);
      g_assert_nonnull (strstr (error->message, "--listen"));
      g_assert_null (host);
    }
}

static gboolean
load (SrvConfig   *config,
      const char **args,
      const char **env,
      GError     **error)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_auto(GStrv) envp = g_strdupv ((char **) env);
  char **argvp;
  int argc;
  gboolean ok;

  g_ptr_array_add (argv, g_strdup ("magpied"));
  for (const char **a = args; a && *a; a++)
    g_ptr_array_add (argv, g_strdup (*a));
  argc = argv->len;
  g_ptr_array_add (argv, NULL);
  /* GOptionContext rearranges argv; give it a copy it may modify. */
  argvp = g_memdup2 (argv->pdata, sizeof (char *) * argv->len);
  ok = srv_config_load (config, &argc, &argvp, (const char * const *) envp, error);
  g_free (argvp);
  return ok;
}

static void
test_defaults (void)
{
  g_autoptr(SrvConfig) config = srv_config_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *expected_dir = g_build_filename (g_get_user_data_dir (), "magpie", "server",
                                                    NULL);

  g_assert_true (load (config, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (config->listen_host, ==, "127.0.0.1");
  g_assert_cmpuint (config->listen_port, ==, 8080);
  g_assert_cmpstr (config->data_dir, ==, expected_dir);
  g_assert_null (config->public_url);
  g_assert_cmpint (config->log_format, ==, MP_LOG_FORMAT_LOGFMT);
}

static void
test_service_options (void)
{
  const char *env[] = { "MAGPIED_WORKERS=2:6", "MAGPIED_GUESTS=no", NULL };
  const char *args[] = { "--bucket=photos", "--region=eu-west-3", "--tag-top-k=3",
                         "--tag-min-confidence=0.25", "--photo-model=rel/photos.onnx", NULL };
  static const char *bad[] = {
    "--workers=0:2", "--workers=3:2", "--workers=1:65", "--workers=a", "--workers=1:2:3",
    "--guests=maybe", "--bucket=Bad_Bucket", "--bucket=ab", "--region=", "--tag-top-k=0",
    "--tag-top-k=21", "--tag-min-confidence=1.5", "--tag-min-confidence=x", "--photo-model=",
    "--admin-access-key=short", "--admin-access-key=ASIA0000000000000000",
    "--admin-access-key=lowercase0000000000", "--admin-secret-key=tooshort",
  };
  g_autoptr(SrvConfig) config = srv_config_new ();
  g_autoptr(SrvConfig) copy = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *model = g_canonicalize_filename ("rel/photos.onnx", NULL);

  g_assert_true (load (config, NULL, NULL, &error));
  g_assert_cmpstr (config->bucket, ==, "magpie");
  g_assert_cmpstr (config->region, ==, "us-east-1");
  g_assert_cmpuint (config->workers_min, ==, 1);
  g_assert_cmpuint (config->workers_max, ==, 4);
  g_assert_true (config->guests);

  g_assert_true (load (config, args, env, &error));
  g_assert_no_error (error);
  copy = srv_config_copy (config);
  g_assert_cmpstr (copy->bucket, ==, "photos");
  g_assert_cmpstr (copy->region, ==, "eu-west-3");
  g_assert_cmpuint (copy->workers_min, ==, 2);
  g_assert_cmpuint (copy->workers_max, ==, 6);
  g_assert_false (copy->guests);
  g_assert_cmpuint (copy->tag_top_k, ==, 3);
  g_assert_cmpfloat (copy->tag_min_confidence, ==, 0.25);
  g_assert_cmpstr (copy->photo_model, ==, model);
  g_assert_null (copy->digit_model);

  {
    /* The pair goes together, and the secret never shows in an error. */
    g_autoptr(SrvConfig) c = srv_config_new ();
    g_autoptr(GError) e = NULL;
    const char *half[] = { "--admin-secret-key=0123456789abcdef0123456789abcdef", NULL };
    const char *both[] = { "--admin-access-key=MAGPIEADMIN000000001", NULL };
    const char *both_env[] = { "MAGPIED_ADMIN_SECRET_KEY=0123456789abcdef0123456789abcdef",
                               NULL };

    g_assert_false (load (c, half, NULL, &e));
    g_assert_error (e, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID);
    g_assert_null (strstr (e->message, "0123456789abcdef"));
    g_clear_error (&e);
    g_assert_true (load (c, both, both_env, &e));
    g_assert_no_error (e);
    g_assert_cmpstr (c->admin_access_key, ==, "MAGPIEADMIN000000001");
  }

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(SrvConfig) c = srv_config_new ();
      g_autoptr(GError) e = NULL;
      const char *one[] = { bad[i], NULL };
      g_autofree char *flag = g_strndup (bad[i], strchr (bad[i], '=') - bad[i]);

      g_assert_false (load (c, one, NULL, &e));
      g_assert_error (e, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID);
      g_assert_nonnull (strstr (e->message, flag));
    }
}

static void
test_precedence (void)
{
  g_autofree char *dir = g_dir_make_tmp ("magpied-config-XXXXXX", NULL);
  g_autofree char *file = g_build_filename (dir, "magpied.conf", NULL);
  g_autofree char *file_arg = g_strdup_printf ("--config=%s", file);
  const char *env[] = { "MAGPIED_DATA_DIR=/srv/from-env", "MAGPIED_LOG_FORMAT=json", NULL };
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_set_contents (file,
    "[magpied]\n"
    "listen=127.0.0.1:9001\n"
    "data-dir=/srv/from-file\n"
    "public-url=https://photos.example.org\n", -1, NULL));

  {
    /* file only */
    g_autoptr(SrvConfig) config = srv_config_new ();
    const char *args[] = { file_arg, NULL };

    g_assert_true (load (config, args, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (config->listen_port, ==, 9001);
    g_assert_cmpstr (config->data_dir, ==, "/srv/from-file");
    g_assert_cmpstr (config->public_url, ==, "https://photos.example.org");
  }
  {
    /* env beats file */
    g_autoptr(SrvConfig) config = srv_config_new ();
    const char *args[] = { file_arg, NULL };

    g_assert_true (load (config, args, env, &error));
    g_assert_no_error (error);
    g_assert_cmpstr (config->data_dir, ==, "/srv/from-env");
    g_assert_cmpint (config->log_format, ==, MP_LOG_FORMAT_JSON);
    g_assert_cmpuint (config->listen_port, ==, 9001);
  }
  {
    /* flag beats env; the config file may also come from the environment */
    g_autoptr(SrvConfig) config = srv_config_new ();
    g_autofree char *env_config = g_strdup_printf ("MAGPIED_CONFIG=%s", file);
    const char *env2[] = { "MAGPIED_DATA_DIR=/srv/from-env", env_config, NULL };
    const char *args[] = { "--data-dir", "/srv/from-flag", "--listen=[::1]:7000", NULL };

    g_assert_true (load (config, args, env2, &error));
    g_assert_no_error (error);
    g_assert_cmpstr (config->data_dir, ==, "/srv/from-flag");
    g_assert_cmpstr (config->listen_host, ==, "::1");
    g_assert_cmpuint (config->listen_port, ==, 7000);
    g_assert_cmpstr (config->public_url, ==, "https://photos.example.org");
  }

  g_unlink (file);
  g_rmdir (dir);
}

static void
test_worker_scaling (void)
{
  {
    g_autoptr(SrvConfig) config = srv_config_new ();

    g_assert_cmpuint (config->worker_target, ==, 8);
    g_assert_cmpuint (config->worker_cooldown_ms, ==, 30000);
    g_assert_cmpuint (config->job_lease_ms, ==, 30000);
    /* The default lease is the one magpied always took: 30 s plus 10 s per photo. */
    g_assert_cmpint (srv_workers_lease_us (config->job_lease_ms, 1), ==, 40 * G_USEC_PER_SEC);
    g_assert_cmpint (srv_workers_lease_us (config->job_lease_ms, 8), ==, 110 * G_USEC_PER_SEC);
  }
  {
    g_autoptr(SrvConfig) config = srv_config_new ();
    g_autoptr(SrvConfig) copy = NULL;
    g_autoptr(GError) error = NULL;
    const char *args[] = { "--worker-target", "3", "--worker-cooldown=0.25", "--job-lease=1.5",
                           NULL };

    g_assert_true (load (config, args, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (config->worker_target, ==, 3);
    g_assert_cmpuint (config->worker_cooldown_ms, ==, 250);
    g_assert_cmpuint (config->job_lease_ms, ==, 1500);
    g_assert_cmpint (srv_workers_lease_us (config->job_lease_ms, 3), ==, 3 * G_USEC_PER_SEC);
    copy = srv_config_copy (config);
    g_assert_cmpuint (copy->worker_cooldown_ms, ==, 250);
    g_assert_cmpuint (copy->job_lease_ms, ==, 1500);
  }
  {
    /* the environment names follow the flags */
    g_autoptr(SrvConfig) config = srv_config_new ();
    g_autoptr(GError) error = NULL;
    const char *env[] = { "MAGPIED_WORKER_TARGET=20", "MAGPIED_WORKER_COOLDOWN=0", NULL };
    const char *args[] = { NULL };

    g_assert_true (load (config, args, env, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (config->worker_target, ==, 20);
    g_assert_cmpuint (config->worker_cooldown_ms, ==, 0);
  }
}

static void
test_database_and_role (void)
{
  {
    /* The defaults: one process does everything over a SQLite file in the data dir. */
    g_autoptr(SrvConfig) config = srv_config_new ();
    g_autoptr(GError) error = NULL;
    const char *args[] = { NULL };

    g_assert_true (load (config, args, NULL, &error));
    g_assert_no_error (error);
    g_assert_null (config->database);
    g_assert_cmpint (config->role, ==, SRV_ROLE_ALL);
  }
  {
    g_autoptr(SrvConfig) config = srv_config_new ();
    g_autoptr(SrvConfig) copy = NULL;
    g_autoptr(GError) error = NULL;
    const char *uri = "postgresql://magpie:s3cret@db.internal:5433/magpie?sslmode=require";
    const char *args[] = { "--database", uri, "--role=worker", NULL };
    g_autofree char *shown = NULL;

    g_assert_true (load (config, args, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpstr (config->database, ==, uri);
    g_assert_cmpint (config->role, ==, SRV_ROLE_WORKER);
    g_assert_cmpstr (srv_role_to_string (config->role), ==, "worker");
    copy = srv_config_copy (config);
    g_assert_cmpstr (copy->database, ==, uri);
    /* The password never reaches a log line. */
    shown = srv_db_location_for_display (uri);
    g_assert_null (strstr (shown, "s3cret"));
    g_assert_nonnull (strstr (shown, "db.internal:5433/magpie"));
  }
  {
    g_autofree char *shown = srv_db_location_for_display ("postgres:///magpie?password=s3cret");

    g_assert_null (strstr (shown, "s3cret"));
  }
  {
    /* Paths are made absolute, with or without the sqlite: prefix; the variables work too. */
    g_autoptr(SrvConfig) config = srv_config_new ();
    g_autoptr(GError) error = NULL;
    const char *env[] = { "MAGPIED_DATABASE=sqlite:rel/catalog.db", "MAGPIED_ROLE=api", NULL };
    const char *args[] = { NULL };
    g_autofree char *cwd = g_get_current_dir ();
    g_autofree char *expected = g_build_filename (cwd, "rel", "catalog.db", NULL);
    g_autofree char *expected_uri = g_strconcat ("sqlite:", expected, NULL);

    g_assert_true (load (config, args, env, &error));
    g_assert_no_error (error);
    g_assert_cmpstr (config->database, ==, expected_uri);
    g_assert_cmpint (config->role, ==, SRV_ROLE_API);
  }
}

static void
test_errors (void)
{
  static const struct {
    const char *args[3];
    int code;
    const char *mentions;
  } cases[] = {
    { { "--no-such-flag", NULL }, SRV_CONFIG_ERROR_USAGE, "--no-such-flag" },
    { { "--listen", NULL }, SRV_CONFIG_ERROR_USAGE, "--listen" },
    { { "stray", NULL }, SRV_CONFIG_ERROR_USAGE, "stray" },
    { { "--listen", "nowhere" }, SRV_CONFIG_ERROR_INVALID, "nowhere" },
    { { "--log-format", "xml" }, SRV_CONFIG_ERROR_INVALID, "xml" },
    { { "--public-url", "ftp://x" }, SRV_CONFIG_ERROR_INVALID, "ftp://x" },
    { { "--data-dir", "" }, SRV_CONFIG_ERROR_INVALID, "--data-dir" },
    { { "--config", "/nonexistent/magpied.conf" }, SRV_CONFIG_ERROR_FILE, "/nonexistent" },
    { { "--worker-target", "0" }, SRV_CONFIG_ERROR_INVALID, "--worker-target" },
    { { "--worker-target", "8x" }, SRV_CONFIG_ERROR_INVALID, "8x" },
    { { "--worker-cooldown", "-1" }, SRV_CONFIG_ERROR_INVALID, "--worker-cooldown" },
    { { "--worker-cooldown", "soon" }, SRV_CONFIG_ERROR_INVALID, "soon" },
    { { "--worker-cooldown", "3601" }, SRV_CONFIG_ERROR_INVALID, "3601" },
    { { "--job-lease", "0.5" }, SRV_CONFIG_ERROR_INVALID, "--job-lease" },
    { { "--job-lease", "later" }, SRV_CONFIG_ERROR_INVALID, "later" },
    { { "--job-lease", "86401" }, SRV_CONFIG_ERROR_INVALID, "86401" },
    { { "--database", "" }, SRV_CONFIG_ERROR_INVALID, "--database" },
    { { "--database", "postgres:magpie" }, SRV_CONFIG_ERROR_INVALID, "postgresql://" },
    { { "--role", "both" }, SRV_CONFIG_ERROR_INVALID, "both" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(SrvConfig) config = srv_config_new ();
      g_autoptr(GError) error = NULL;

      g_assert_false (load (config, (const char **) cases[i].args, NULL, &error));
      g_assert_error (error, SRV_CONFIG_ERROR, cases[i].code);
      g_assert_nonnull (strstr (error->message, cases[i].mentions));
    }
}

static void
test_unknown_file_key (void)
{
  g_autofree char *dir = g_dir_make_tmp ("magpied-config-XXXXXX", NULL);
  g_autofree char *file = g_build_filename (dir, "magpied.conf", NULL);
  g_autoptr(SrvConfig) config = srv_config_new ();
  g_autoptr(GError) error = NULL;
  const char *args[] = { "--config", file, NULL };

  g_assert_true (g_file_set_contents (file, "[magpied]\nlisten=127.0.0.1:1\ndata_dir=/x\n",
                                      -1, NULL));
  g_assert_false (load (config, args, NULL, &error));
  g_assert_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "data_dir"));
  g_unlink (file);
  g_rmdir (dir);
}

static void
test_version_and_help (void)
{
  g_autoptr(SrvConfig) config = srv_config_new ();
  g_autoptr(GError) error = NULL;
  const char *args[] = { "--version", NULL };
  g_autofree char *help = srv_config_help ();
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  char **argvp;
  int argc = 2;

  g_ptr_array_add (argv, "magpied");
  g_ptr_array_add (argv, (char *) args[0]);
  g_ptr_array_add (argv, NULL);
  argvp = (char **) argv->pdata;
  g_assert_true (srv_config_load (config, &argc, &argvp, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (argc, ==, 0);

  for (const char *opt = "listen\0data-dir\0config\0database\0role\0public-url\0log-format\0"; *opt;
       opt += strlen (opt) + 1)
    {
      g_autofree char *flag = g_strconcat ("--", opt, NULL);
      g_assert_nonnull (strstr (help, flag));
    }
  g_assert_nonnull (strstr (help, "MAGPIED_DATA_DIR"));
}

static void
test_remote_store (void)
{
  const char *env[] = { "MAGPIED_S3_SECRET_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY", NULL };
  const char *args[] = { "--s3-endpoint=https://s3.eu-west-3.amazonaws.com",
                         "--s3-region=eu-west-3", "--s3-access-key=AKIAIOSFODNN7EXAMPLE",
                         "--sts-endpoint=https://sts.eu-west-3.amazonaws.com",
                         "--sts-role-arn=arn:aws:iam::123456789012:role/magpie-uploader",
                         "--s3-path-style=no",
                         "--s3-public-endpoint=https://s3.example.org/store", NULL };
  static const struct {
    const char *args[4];
    const char *mentions;
  } bad[] = {
    { { "--s3-endpoint=ftp://example.org", NULL }, "--s3-endpoint" },
    { { "--s3-endpoint=http://", NULL }, "--s3-endpoint" },
    { { "--s3-endpoint=http://u:p@minio:9000", NULL }, "--s3-endpoint" },
    /* a remote store needs our key pair there */
    { { "--s3-endpoint=http://minio:9000", "--s3-access-key=K", NULL }, "--s3-secret-key" },
    /* and the --s3-* and --sts-* settings need a remote store */
    { { "--s3-access-key=K", "--s3-secret-key=S", NULL }, "--s3-endpoint" },
    { { "--sts-role-arn=arn:aws:iam::1:role/r", NULL }, "--s3-endpoint" },
    { { "--s3-endpoint=http://minio:9000", "--s3-access-key=has space", "--s3-secret-key=S" },
      "--s3-access-key" },
    { { "--s3-endpoint=http://minio:9000", "--sts-role-arn=role/r", NULL }, "--sts-role-arn" },
    { { "--s3-endpoint=http://minio:9000", "--s3-region=eu west", NULL }, "--s3-region" },
    { { "--s3-endpoint=http://minio:9000", "--s3-path-style=maybe", NULL }, "--s3-path-style" },
  };
  g_autoptr(SrvConfig) config = srv_config_new ();
  g_autoptr(SrvConfig) copy = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_null (config->s3_endpoint);
  g_assert_true (config->s3_path_style);
  g_assert_true (load (config, args, env, &error));
  g_assert_no_error (error);
  copy = srv_config_copy (config);
  g_assert_cmpstr (copy->s3_endpoint, ==, "https://s3.eu-west-3.amazonaws.com");
  g_assert_cmpstr (copy->s3_region, ==, "eu-west-3");
  g_assert_cmpstr (copy->s3_access_key, ==, "AKIAIOSFODNN7EXAMPLE");
  g_assert_cmpstr (copy->s3_secret_key, ==, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
  g_assert_cmpstr (copy->sts_endpoint, ==, "https://sts.eu-west-3.amazonaws.com");
  g_assert_cmpstr (copy->sts_role_arn, ==, "arn:aws:iam::123456789012:role/magpie-uploader");
  g_assert_cmpstr (copy->s3_public_endpoint, ==, "https://s3.example.org/store");
  g_assert_false (copy->s3_path_style);

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(SrvConfig) c = srv_config_new ();
      g_autoptr(GError) e = NULL;

      g_assert_false (load (c, (const char **) bad[i].args, NULL, &e));
      g_assert_error (e, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID);
      g_assert_nonnull (strstr (e->message, bad[i].mentions));
    }
  {
    /* A secret never shows in an error. */
    g_autoptr(SrvConfig) c = srv_config_new ();
    g_autoptr(GError) e = NULL;
    const char *secret[] = { "--s3-endpoint=http://minio:9000", "--s3-access-key=K",
                             "--s3-secret-key=bad secret value", NULL };

    g_assert_false (load (c, secret, NULL, &e));
    g_assert_null (strstr (e->message, "bad secret value"));
  }
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/config/parse-listen", test_parse_listen);
  g_test_add_func ("/srv/config/defaults", test_defaults);
  g_test_add_func ("/srv/config/precedence", test_precedence);
  g_test_add_func ("/srv/config/database-and-role", test_database_and_role);
  g_test_add_func ("/srv/config/service-options", test_service_options);
  g_test_add_func ("/srv/config/errors", test_errors);
  g_test_add_func ("/srv/config/worker-scaling", test_worker_scaling);
  g_test_add_func ("/srv/config/unknown-file-key", test_unknown_file_key);
  g_test_add_func ("/srv/config/version-and-help", test_version_and_help);
  g_test_add_func ("/srv/config/remote-store", test_remote_store);
  return g_test_run ();
}
