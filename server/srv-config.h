/* srv-config.h - magpied settings from flags, MAGPIED_* variables and a GKeyFile */
#pragma once

#include <glib.h>

#include "mp-log.h"

G_BEGIN_DECLS

#define SRV_CONFIG_ERROR (srv_config_error_quark ())

/* A lease covers the slowest honest batch many times over: decoding a 50 MP PNG takes ~2 s
 * and one inference well under 1 s on a busy 2-core box, so 30 s plus 10 s per photo. It is
 * also how long a killed worker's jobs wait for another worker (--job-lease). */
#define SRV_CONFIG_JOB_LEASE_DEFAULT_S 30

typedef enum {
  SRV_CONFIG_ERROR_USAGE,     /* unknown flag, missing argument: exit status 2 */
  SRV_CONFIG_ERROR_INVALID,   /* a value that does not parse */
  SRV_CONFIG_ERROR_FILE,      /* the config file cannot be read */
} SrvConfigError;

/* What one magpied process does (DESIGN.md "roles"): everything, or one half of a fleet that
 * shares a PostgreSQL catalog. */
typedef enum {
  SRV_ROLE_ALL,     /* REST, S3, events and the tagging workers: one machine */
  SRV_ROLE_API,     /* REST, S3 and events; no workers */
  SRV_ROLE_WORKER,  /* the workers and their autoscaler; HTTP only for /healthz, /readyz, /metrics */
} SrvRole;

typedef struct {
  char        *listen;        /* as given, "127.0.0.1:8080" */
  char        *listen_host;
  guint16      listen_port;   /* 0 picks a free port */
  char        *data_dir;
  char        *database;      /* catalog location for srv_db_open(); NULL: data_dir/catalog.db */
  SrvRole      role;
  char        *config_file;
  char        *public_url;    /* NULL: derived from the bound address */
  MpLogFormat  log_format;
  char        *bucket;        /* the one S3 bucket served, "magpie" */
  char        *region;        /* SigV4 region clients sign for, "us-east-1" */
  char        *photo_model;   /* NULL: the bundled photos.onnx */
  char        *digit_model;   /* NULL: the bundled digits.onnx */
  guint        workers_min;   /* tagging workers the autoscaler keeps at least ... */
  guint        workers_max;   /* ... and at most */
  gboolean     guests;        /* POST /v1/identities hands out guest identities */
  char        *tag_rules;     /* NULL or a GKeyFile of per-label thresholds and aliases */
  double      tag_min_confidence;
  guint        tag_top_k;
  char        *admin_access_key;  /* NULL, or a key pair that reaches the whole bucket ... */
  char        *admin_secret_key;  /* ... for backups and operators; never logged */
  char        *s3_events_secret;  /* bearer of POST /v1/s3-events; NULL: the route is off */
  guint        worker_target;       /* queued jobs per worker the autoscaler aims for */
  guint        worker_cooldown_ms;  /* how long the queue must stay low before scaling in */
  guint        job_lease_ms;        /* a batch's lease: this plus a third of it per photo */
  /* A remote S3-compatible store instead of the embedded one (all NULL: embedded). */
  char        *s3_endpoint;         /* where magpied reaches it */
  char        *s3_public_endpoint;  /* NULL: clients reach it at s3_endpoint too */
  char        *s3_region;           /* NULL: region */
  char        *s3_access_key;       /* magpied's own key pair there ... */
  char        *s3_secret_key;       /* ... never logged */
  gboolean     s3_path_style;       /* host/bucket/key (default) or bucket.host/key */
  char        *sts_endpoint;        /* NULL: s3_endpoint (moto, MinIO and Ceph serve STS there) */
  char        *sts_role_arn;        /* the role AssumeRole hands out, narrowed per identity */
} SrvConfig;

GQuark     srv_config_error_quark   (void);
SrvConfig *srv_config_new           (void);
void       srv_config_free          (SrvConfig          *config);
SrvConfig *srv_config_copy          (const SrvConfig    *config);
gboolean   srv_config_load          (SrvConfig          *config,
                                     int                *argc,
                                     char             ***argv,
                                     const char * const *envp,
                                     GError            **error);
gboolean   srv_config_parse_workers (const char         *text,
                                     guint              *min,
                                     guint              *max,
                                     GError            **error);
gboolean   srv_config_parse_listen  (const char         *text,
                                     char              **host,
                                     guint16            *port,
                                     GError            **error);
char      *srv_config_help          (void);
const char *srv_role_to_string      (SrvRole             role);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvConfig, srv_config_free)

G_END_DECLS
