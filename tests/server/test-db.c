/* test-db.c - the catalog and queue through srv-db.h only, so every backend runs the same tests
 *
 * open_backend_under_test() is the one place that knows about backends: a SQLite file in a
 * temporary directory, or under tests/with-postgres.sh a fresh PostgreSQL database.
 */
#include "config.h"

#include <gio/gio.h>
#include <gio/gunixinputstream.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "mp-test-util.h"
#include "srv-db.h"

#define T0 ((gint64) 1800000000 * G_USEC_PER_SEC)  /* 2027-01-15T08:00:00Z */
#define LEASE_US (60 * G_USEC_PER_SEC)

static char *self_exe;

typedef struct {
  char   *dir;
  char   *location;
  SrvDb  *db;
  gint64  now;
} Fixture;

static gint64
test_clock (gpointer user_data)
{
  Fixture *f = user_data;

  return f->now;
}

static SrvDb *
open_backend_under_test (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  SrvDb *db = srv_db_open (f->location, &error);

  g_assert_no_error (error);
  g_assert_nonnull (db);
  srv_db_set_clock (db, test_clock, f);
  return db;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->dir = mp_test_make_tmpdir ("magpie-db");
  f->location = mp_test_db_location (f->dir);
  f->now = T0;
  f->db = open_backend_under_test (f);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->db, srv_db_close);
  mp_test_rm_rf (f->dir);
  g_free (f->dir);
  g_free (f->location);
}

static void
reopen (Fixture *f)
{
  g_clear_pointer (&f->db, srv_db_close);
  f->db = open_backend_under_test (f);
}

static char *
new_guest (SrvDb *db)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvIdentity) identity = srv_db_create_identity (db, SRV_IDENTITY_GUEST, NULL, NULL,
                                                            "secret-hash", &error);

  g_assert_no_error (error);
  return g_strdup (identity->id);
}

static SrvPhoto *
register_key (SrvDb *db, const char *identity_id, const char *key, gboolean *created)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *sha = g_compute_checksum_for_string (G_CHECKSUM_SHA256, key, -1);
  SrvPhoto *photo = srv_db_register_photo (db, identity_id, key, 1234, "image/jpeg", sha,
                                           640, 480, created, &error);

  g_assert_no_error (error);
  g_assert_nonnull (photo);
  return photo;
}

static GPtrArray *
lease (SrvDb *db, const char *owner, guint max_n)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *jobs = srv_db_lease_jobs (db, owner, max_n, LEASE_US, &error);

  g_assert_no_error (error);
  return jobs;
}

static gboolean
complete (SrvDb *db, const SrvJob *job, const char *owner, const char *label)
{
  g_autoptr(GError) error = NULL;
  SrvTag tags[] = { { (char *) label, 0.9 }, { (char *) "other", 0.05 } };
  gboolean applied = FALSE;

  g_assert_true (srv_db_complete_job (db, job->id, owner, "test-model", tags, 2, &applied,
                                      &error));
  g_assert_no_error (error);
  return applied;
}

static SrvPhoto *
get_photo (SrvDb *db, const char *identity_id, const char *photo_id)
{
  g_autoptr(GError) error = NULL;
  SrvPhoto *photo = srv_db_get_photo (db, identity_id, photo_id, &error);

  g_assert_no_error (error);
  return photo;
}

static GPtrArray *
events (SrvDb *db, const char *identity_id)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *list = srv_db_events_since (db, identity_id, 0, 100000, &error);

  g_assert_no_error (error);
  return list;
}

static guint
count_events (GPtrArray *list, SrvEventType type, const char *photo_id)
{
  guint n = 0;

  for (guint i = 0; i < list->len; i++)
    {
      SrvEvent *e = list->pdata[i];

      if (e->type == type && (photo_id == NULL || strstr (e->data, photo_id) != NULL))
        n++;
    }
  return n;
}

static SrvQueueStats
stats (SrvDb *db)
{
  g_autoptr(GError) error = NULL;
  SrvQueueStats s;

  g_assert_true (srv_db_queue_stats (db, &s, &error));
  g_assert_no_error (error);
  return s;
}

static void
test_migrations (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) before = srv_db_schema_versions (f->db, &error);
  g_autoptr(GArray) after = NULL;
  g_autoptr(SrvDb) second = NULL;

  g_assert_no_error (error);
  g_assert_cmpuint (before->len, >=, 1);
  g_assert_cmpint (g_array_index (before, int, 0), ==, 1);
  for (guint i = 1; i < before->len; i++)
    g_assert_cmpint (g_array_index (before, int, i), >, g_array_index (before, int, i - 1));

  /* Reopening, and a second handle on the same database, apply nothing again. */
  reopen (f);
  second = open_backend_under_test (f);
  after = srv_db_schema_versions (second, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (after->len, ==, before->len);
  g_assert_cmpmem (after->data, after->len * sizeof (int), before->data,
                   before->len * sizeof (int));
  g_assert_true (srv_db_check_integrity (f->db, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (srv_db_backend_name (f->db), !=, NULL);
}

static void
test_identity (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvIdentity) guest = NULL;
  g_autoptr(SrvIdentity) alice = NULL;
  g_autoptr(SrvIdentity) got = NULL;
  g_autoptr(SrvIdentity) by_name = NULL;
  g_autoptr(SrvIdentity) dup = NULL;
  g_autoptr(SrvIdentity) missing = NULL;
  g_autoptr(SrvIdentity) bad = NULL;

  guest = srv_db_create_identity (f->db, SRV_IDENTITY_GUEST, NULL, NULL, "s1", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (guest->id), ==, 22);
  g_assert_cmpuint (strspn (guest->id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789-_"), ==, 22);
  g_assert_null (guest->username);
  g_assert_cmpint (guest->kind, ==, SRV_IDENTITY_GUEST);
  g_assert_cmpint (guest->created_at, ==, T0);

  alice = srv_db_create_identity (f->db, SRV_IDENTITY_ACCOUNT, "Alice", "$argon2id$v=19$x",
                                  "s2", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (alice->id, !=, guest->id);

  got = srv_db_get_identity (f->db, alice->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got->username, ==, "Alice");
  g_assert_cmpstr (got->password_hash, ==, "$argon2id$v=19$x");
  g_assert_cmpstr (got->secret_hash, ==, "s2");
  g_assert_cmpint (got->kind, ==, SRV_IDENTITY_ACCOUNT);
  g_assert_false (got->disabled);

  by_name = srv_db_get_identity_by_username (f->db, "alice", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_name->id, ==, alice->id);

  dup = srv_db_create_identity (f->db, SRV_IDENTITY_ACCOUNT, "ALICE", "h", "s", &error);
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT);
  g_assert_null (dup);
  g_clear_error (&error);

  missing = srv_db_get_identity (f->db, "nope", &error);
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND);
  g_assert_null (missing);
  g_clear_error (&error);
  g_assert_null (srv_db_get_identity_by_username (f->db, "bob", &error));
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND);
  g_clear_error (&error);

  bad = srv_db_create_identity (f->db, SRV_IDENTITY_GUEST, "carol", NULL, "s", &error);
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID);
  g_assert_null (bad);
  g_clear_error (&error);
  g_assert_null (srv_db_create_identity (f->db, SRV_IDENTITY_ACCOUNT, NULL, "h", "s", &error));
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID);
}

static void
test_register_idempotent (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *me = new_guest (f->db);
  g_autofree char *other = new_guest (f->db);
  g_autoptr(SrvPhoto) first = NULL;
  g_autoptr(SrvPhoto) again = NULL;
  g_autoptr(SrvPhoto) stolen = NULL;
  g_autoptr(GPtrArray) evs = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autofree char *sha = g_compute_checksum_for_string (G_CHECKSUM_SHA256, "x", -1);
  JsonObject *o;
  gboolean created = FALSE;

  first = register_key (f->db, me, "users/me/a.jpg", &created);
  g_assert_true (created);
  g_assert_cmpint (first->state, ==, SRV_PHOTO_QUEUED);
  g_assert_cmpint (first->created_at, ==, T0);
  g_assert_cmpuint (first->tags->len, ==, 0);
  f->now += G_USEC_PER_SEC;
  again = register_key (f->db, me, "users/me/a.jpg", &created);
  g_assert_false (created);
  g_assert_cmpstr (again->id, ==, first->id);
  g_assert_cmpint (again->created_at, ==, T0);

  g_assert_cmpint (stats (f->db).queued, ==, 1);
  evs = events (f->db, me);
  g_assert_cmpuint (evs->len, ==, 1);
  g_assert_cmpint (((SrvEvent *) evs->pdata[0])->type, ==, SRV_EVENT_PHOTO_CREATED);
  json_parser_load_from_data (parser, ((SrvEvent *) evs->pdata[0])->data, -1, &error);
  g_assert_no_error (error);
  o = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (o, "id"), ==, first->id);
  g_assert_cmpstr (json_object_get_string_member (o, "key"), ==, "users/me/a.jpg");
  g_assert_cmpstr (json_object_get_string_member (o, "state"), ==, "queued");

  stolen = srv_db_register_photo (f->db, other, "users/me/a.jpg", 1, "image/png", sha, 1, 1,
                                  NULL, &error);
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT);
  g_assert_null (stolen);
  g_clear_error (&error);
  g_assert_null (srv_db_register_photo (f->db, "no-such-identity", "k2", 1, "image/png", sha, 1,
                                        1, NULL, &error));
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (srv_db_register_photo (f->db, me, "k3", 1, "image/png", "abc", 1, 1, NULL,
                                        &error));
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID);
  g_assert_cmpint (stats (f->db).queued, ==, 1);
}

static void
test_isolation (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *a = new_guest (f->db);
  g_autofree char *b = new_guest (f->db);
  g_autoptr(SrvPhoto) photo = register_key (f->db, a, "users/a/1.jpg", NULL);
  g_autoptr(SrvPhoto) theirs = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GPtrArray) evs_a = NULL;
  g_autoptr(GPtrArray) evs_b = NULL;
  g_autofree char *key = NULL;
  SrvPhotoQuery q = { .limit = 10 };

  theirs = srv_db_get_photo (f->db, b, photo->id, &error);
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND);
  g_assert_null (theirs);
  g_clear_error (&error);
  list = srv_db_list_photos (f->db, b, &q, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 0);
  g_assert_null (srv_db_delete_photo (f->db, b, photo->id, &error));
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND);
  g_clear_error (&error);

  key = srv_db_delete_photo (f->db, a, photo->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (key, ==, "users/a/1.jpg");
  g_assert_null (srv_db_get_photo (f->db, a, photo->id, &error));
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (srv_db_delete_photo (f->db, a, photo->id, &error));
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_cmpint (stats (f->db).queued, ==, 0);
  evs_a = events (f->db, a);
  evs_b = events (f->db, b);
  g_assert_cmpuint (evs_a->len, ==, 2);
  g_assert_cmpuint (count_events (evs_a, SRV_EVENT_PHOTO_DELETED, photo->id), ==, 1);
  g_assert_cmpuint (evs_b->len, ==, 0);
  g_assert_true (srv_db_check_integrity (f->db, &error));
  g_assert_no_error (error);
}

/* The brute-force side of the pagination test: what the catalog should hold. */
typedef struct {
  char   *id;
  gint64  created_at;
  char   *labels[2];
  double  conf[2];
  guint   n_tags;
} Model;

static int
model_cmp_newest_first (gconstpointer a, gconstpointer b)
{
  const Model *ma = a;
  const Model *mb = b;

  if (ma->created_at != mb->created_at)
    return ma->created_at < mb->created_at ? 1 : -1;
  return -strcmp (ma->id, mb->id);
}

static gboolean
model_matches (const Model *m, const char *tag, double min_confidence)
{
  if (tag == NULL && min_confidence <= 0)
    return TRUE;
  for (guint i = 0; i < m->n_tags; i++)
    if ((tag == NULL || g_ascii_strcasecmp (m->labels[i], tag) == 0) &&
        m->conf[i] >= min_confidence)
      return TRUE;
  return FALSE;
}

static void
test_list_pagination (Fixture *f, gconstpointer data)
{
  static const char *vocabulary[] = { "Cat", "dog", "CAT", "bird", "cat", "Tree" };
  static const struct {
    const char *tag;
    double min_confidence;
  } filters[] = {
    { NULL, 0 }, { "cat", 0 }, { "CAT", 0.5 }, { NULL, 0.8 }, { "dog", 0.99 }, { "none", 0 },
  };
  static const guint limits[] = { 1, 7, 50, 200 };
  g_autofree char *me = new_guest (f->db);
  g_autofree char *other = new_guest (f->db);
  g_autoptr(GArray) model = g_array_new (FALSE, TRUE, sizeof (Model));
  g_autoptr(GHashTable) by_id = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) jobs = NULL;
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  g_autoptr(GError) error = NULL;

  g_array_set_size (model, 250);
  for (guint i = 0; i < 250; i++)
    {
      g_autofree char *key = g_strdup_printf ("users/me/%03u.jpg", i);
      g_autoptr(SrvPhoto) p = register_key (f->db, me, key, NULL);
      Model *m = &g_array_index (model, Model, i);

      m->id = g_strdup (p->id);
      m->created_at = p->created_at;
      /* Every third photo shares its timestamp with the next: the id must break the tie. */
      if (i % 3 != 0)
        f->now += 1000;
      if (i % 10 == 0)
        {
          g_autofree char *other_key = g_strdup_printf ("users/other/%03u.jpg", i);
          g_autoptr(SrvPhoto) o = register_key (f->db, other, other_key, NULL);
        }
    }
  for (guint i = 0; i < 250; i++)
    {
      Model *m = &g_array_index (model, Model, i);

      g_hash_table_insert (by_id, m->id, m);
    }

  jobs = lease (f->db, "tagger", 1000);
  g_assert_cmpuint (jobs->len, ==, 275);
  for (guint i = 0; i < jobs->len; i++)
    {
      SrvJob *job = jobs->pdata[i];
      Model *m = g_hash_table_lookup (by_id, job->photo_id);
      SrvTag tags[2];

      if (m == NULL || g_rand_int_range (rand, 0, 5) == 0)
        continue;  /* the other identity's photos, and a fifth left untagged */
      m->n_tags = g_rand_int_range (rand, 1, 3);
      for (guint t = 0; t < m->n_tags; t++)
        {
          m->labels[t] = (char *) vocabulary[g_rand_int_range (rand, 0, G_N_ELEMENTS (vocabulary))];
          m->conf[t] = g_rand_int_range (rand, 0, 101) / 100.0;
          tags[t].label = m->labels[t];
          tags[t].confidence = m->conf[t];
        }
      g_assert_true (srv_db_complete_job (f->db, job->id, "tagger", "m", tags, m->n_tags, NULL,
                                          &error));
      g_assert_no_error (error);
    }
  g_array_sort (model, model_cmp_newest_first);

  for (gsize fi = 0; fi < G_N_ELEMENTS (filters); fi++)
    for (gsize li = 0; li < G_N_ELEMENTS (limits); li++)
      {
        g_autoptr(GPtrArray) expected = g_ptr_array_new ();
        g_autofree char *cursor = NULL;
        guint seen = 0;
        guint pages = 0;

        for (guint i = 0; i < model->len; i++)
          if (model_matches (&g_array_index (model, Model, i), filters[fi].tag,
                             filters[fi].min_confidence))
            g_ptr_array_add (expected, &g_array_index (model, Model, i));
        do
          {
            SrvPhotoQuery q = { filters[fi].tag, filters[fi].min_confidence, limits[li], cursor };
            g_autofree char *next = NULL;
            g_autoptr(GPtrArray) page = srv_db_list_photos (f->db, me, &q, &next, &error);

            g_assert_no_error (error);
            g_assert_cmpuint (page->len, <=, limits[li]);
            for (guint i = 0; i < page->len; i++, seen++)
              {
                SrvPhoto *p = page->pdata[i];
                Model *m;

                g_assert_cmpuint (seen, <, expected->len);
                m = expected->pdata[seen];
                g_assert_cmpstr (p->id, ==, m->id);
                g_assert_cmpstr (p->identity_id, ==, me);
                g_assert_cmpuint (p->tags->len, ==, m->n_tags);
                for (guint t = 0; t < m->n_tags; t++)
                  g_assert_cmpstr (g_array_index (p->tags, SrvTag, t).label, ==, m->labels[t]);
              }
            g_free (cursor);
            cursor = g_steal_pointer (&next);
            pages++;
            g_assert_true (cursor == NULL || page->len == limits[li]);
          }
        while (cursor != NULL);
        g_assert_cmpuint (seen, ==, expected->len);
        g_assert_cmpuint (pages, <=, expected->len / limits[li] + 1);
      }

  /* By key (POST /v1/s3-events removals, GET /v1/photos?key=): that photo only, and only for
   * its owner. */
  {
    SrvPhotoQuery mine = { .limit = 10, .key = "users/me/007.jpg" };
    SrvPhotoQuery theirs = { .limit = 10, .key = "users/other/010.jpg" };
    g_autoptr(GPtrArray) found = srv_db_list_photos (f->db, me, &mine, NULL, &error);
    g_autoptr(GPtrArray) none = NULL;

    g_assert_no_error (error);
    g_assert_cmpuint (found->len, ==, 1);
    g_assert_cmpstr (((SrvPhoto *) found->pdata[0])->key, ==, "users/me/007.jpg");
    g_assert_cmpstr (((SrvPhoto *) found->pdata[0])->identity_id, ==, me);
    none = srv_db_list_photos (f->db, me, &theirs, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (none->len, ==, 0);
  }
  {
    SrvPhotoQuery bad_limit = { .limit = SRV_DB_LIST_LIMIT_MAX + 1 };
    SrvPhotoQuery zero_limit = { .limit = 0 };
    SrvPhotoQuery bad_cursor = { .limit = 10, .cursor = "c1.garbage!" };
    SrvPhotoQuery forged = { .limit = 10, .cursor = "bm90IGEgY3Vyc29y" };

    g_assert_null (srv_db_list_photos (f->db, me, &bad_limit, NULL, &error));
    g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID);
    g_clear_error (&error);
    g_assert_null (srv_db_list_photos (f->db, me, &zero_limit, NULL, &error));
    g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID);
    g_clear_error (&error);
    g_assert_null (srv_db_list_photos (f->db, me, &bad_cursor, NULL, &error));
    g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID);
    g_clear_error (&error);
    g_assert_null (srv_db_list_photos (f->db, me, &forged, NULL, &error));
    g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID);
    g_clear_error (&error);
  }
  for (guint i = 0; i < model->len; i++)
    g_free (g_array_index (model, Model, i).id);
}

static void
test_backoff (void)
{
  g_assert_cmpint (srv_db_backoff_us (1, 0), ==, SRV_DB_BACKOFF_BASE_US / 2);
  g_assert_cmpint (srv_db_backoff_us (1, 1), ==, SRV_DB_BACKOFF_BASE_US);
  g_assert_cmpint (srv_db_backoff_us (3, 1), ==, 4 * SRV_DB_BACKOFF_BASE_US);
  g_assert_cmpint (srv_db_backoff_us (3, 0.5), >, srv_db_backoff_us (3, 0));
  g_assert_cmpint (srv_db_backoff_us (30, 1), ==, SRV_DB_BACKOFF_CAP_US);
  g_assert_cmpint (srv_db_backoff_us (1000, 0), ==, SRV_DB_BACKOFF_CAP_US / 2);
}

static void
test_lease_complete_fail (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *me = new_guest (f->db);
  g_autoptr(SrvPhoto) photo = register_key (f->db, me, "users/me/retry.jpg", NULL);
  g_autoptr(SrvPhoto) good = register_key (f->db, me, "users/me/good.jpg", NULL);
  g_autoptr(SrvPhoto) poison = register_key (f->db, me, "users/me/poison.jpg", NULL);
  g_autoptr(GPtrArray) evs = NULL;
  gint64 failed_at = T0;
  SrvJobState state;
  SrvQueueStats s;

  /* The good photo: complete once, then a duplicate delivery changes nothing. */
  {
    g_autoptr(GPtrArray) jobs = lease (f->db, "w1", 3);
    g_autoptr(GPtrArray) none = lease (f->db, "w2", 3);
    g_autoptr(SrvPhoto) tagging = get_photo (f->db, me, good->id);
    g_autoptr(SrvPhoto) tagged = NULL;
    SrvJob *job = NULL;

    g_assert_cmpuint (jobs->len, ==, 3);
    g_assert_cmpuint (none->len, ==, 0);  /* all leases still valid */
    g_assert_cmpint (tagging->state, ==, SRV_PHOTO_TAGGING);
    for (guint i = 0; i < jobs->len; i++)
      {
        SrvJob *j = jobs->pdata[i];

        g_assert_cmpint (j->attempts, ==, 1);
        g_assert_cmpint (j->state, ==, SRV_JOB_LEASED);
        g_assert_cmpstr (j->lease_owner, ==, "w1");
        g_assert_cmpint (j->lease_expires_at, ==, T0 + LEASE_US);
        g_assert_cmpstr (j->identity_id, ==, me);
        if (g_strcmp0 (j->photo_id, good->id) == 0)
          {
            g_assert_cmpstr (j->photo_key, ==, "users/me/good.jpg");
            job = j;
          }
        else if (g_strcmp0 (j->photo_id, poison->id) == 0)
          {
            g_assert_false (srv_db_fail_job (f->db, j->id, "w2", "not mine", TRUE, &state,
                                            &error));
            g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT);
            g_clear_error (&error);
            g_assert_true (srv_db_fail_job (f->db, j->id, "w1", "cannot decode", FALSE, &state,
                                            &error));
            g_assert_no_error (error);
            g_assert_cmpint (state, ==, SRV_JOB_DEAD);
          }
        else
          {
            g_assert_true (srv_db_fail_job (f->db, j->id, "w1", "store timeout", TRUE, &state,
                                            &error));
            g_assert_no_error (error);
            g_assert_cmpint (state, ==, SRV_JOB_QUEUED);
          }
      }
    g_assert_nonnull (job);
    f->now += 5;
    g_assert_true (complete (f->db, job, "w1", "cat"));
    g_assert_false (complete (f->db, job, "w1", "dog"));
    tagged = get_photo (f->db, me, good->id);
    g_assert_cmpint (tagged->state, ==, SRV_PHOTO_TAGGED);
    g_assert_cmpstr (tagged->model, ==, "test-model");
    g_assert_cmpint (tagged->tagged_at, ==, T0 + 5);
    g_assert_cmpuint (tagged->tags->len, ==, 2);
    g_assert_cmpstr (g_array_index (tagged->tags, SrvTag, 0).label, ==, "cat");
    g_assert_cmpfloat (g_array_index (tagged->tags, SrvTag, 0).confidence, ==, 0.9);
    g_assert_cmpstr (g_array_index (tagged->tags, SrvTag, 1).label, ==, "other");
  }

  {
    g_autoptr(SrvPhoto) dead = get_photo (f->db, me, poison->id);

    g_assert_cmpint (dead->state, ==, SRV_PHOTO_FAILED);
    g_assert_cmpstr (dead->error, ==, "cannot decode");
  }

  /* The retried photo: backoff doubles per attempt and the last failure dead-letters it. */
  for (int attempt = 2; attempt <= SRV_DB_JOB_MAX_ATTEMPTS; attempt++)
    {
      g_autoptr(GPtrArray) early = NULL;
      g_autoptr(GPtrArray) due = NULL;
      g_autoptr(SrvPhoto) queued = get_photo (f->db, me, photo->id);
      SrvJob *job;

      g_assert_cmpint (queued->state, ==, SRV_PHOTO_QUEUED);
      f->now = failed_at + srv_db_backoff_us (attempt - 1, 0) - 1;
      early = lease (f->db, "w1", 5);
      g_assert_cmpuint (early->len, ==, 0);
      f->now = failed_at + srv_db_backoff_us (attempt - 1, 1);
      due = lease (f->db, "w1", 5);
      g_assert_cmpuint (due->len, ==, 1);
      job = due->pdata[0];
      g_assert_cmpint (job->attempts, ==, attempt);
      g_assert_cmpstr (job->last_error, ==, "store timeout");
      g_assert_true (srv_db_fail_job (f->db, job->id, "w1", "store timeout", TRUE, &state,
                                      &error));
      g_assert_no_error (error);
      failed_at = f->now;
      g_assert_cmpint (state, ==, attempt < SRV_DB_JOB_MAX_ATTEMPTS ? SRV_JOB_QUEUED
                                                                    : SRV_JOB_DEAD);
    }
  {
    g_autoptr(SrvPhoto) dead = get_photo (f->db, me, photo->id);
    g_autoptr(GPtrArray) none = NULL;

    g_assert_cmpint (dead->state, ==, SRV_PHOTO_FAILED);
    g_assert_cmpstr (dead->error, ==, "store timeout");
    f->now += SRV_DB_BACKOFF_CAP_US * 2;
    none = lease (f->db, "w1", 5);
    g_assert_cmpuint (none->len, ==, 0);
  }

  s = stats (f->db);
  g_assert_cmpint (s.queued, ==, 0);
  g_assert_cmpint (s.leased, ==, 0);
  g_assert_cmpint (s.done, ==, 1);
  g_assert_cmpint (s.dead, ==, 2);
  g_assert_cmpint (s.retried, ==, SRV_DB_JOB_MAX_ATTEMPTS - 1);
  evs = events (f->db, me);
  g_assert_cmpuint (count_events (evs, SRV_EVENT_PHOTO_CREATED, NULL), ==, 3);
  g_assert_cmpuint (count_events (evs, SRV_EVENT_PHOTO_TAGGED, good->id), ==, 1);
  g_assert_cmpuint (count_events (evs, SRV_EVENT_PHOTO_FAILED, NULL), ==, 2);
  g_assert_nonnull (strstr (((SrvEvent *) evs->pdata[evs->len - 1])->data,
                            "\"error\":\"store timeout\""));
}

static void
expire_and_release (Fixture *f, const char *photo_id, SrvJob **stale, SrvJob **fresh)
{
  g_autoptr(GPtrArray) a = lease (f->db, "A", 1);
  g_autoptr(GPtrArray) b = NULL;

  g_assert_cmpuint (a->len, ==, 1);
  g_assert_cmpstr (((SrvJob *) a->pdata[0])->photo_id, ==, photo_id);
  f->now += LEASE_US;  /* the lease ends exactly now */
  b = lease (f->db, "B", 1);
  g_assert_cmpuint (b->len, ==, 1);
  g_assert_cmpstr (((SrvJob *) b->pdata[0])->id, ==, ((SrvJob *) a->pdata[0])->id);
  g_assert_cmpint (((SrvJob *) b->pdata[0])->attempts, ==, 2);
  *stale = g_ptr_array_steal_index (a, 0);
  *fresh = g_ptr_array_steal_index (b, 0);
}

static void
test_lease_expiry (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *me = new_guest (f->db);
  const char *keys[] = { "users/me/p1.jpg", "users/me/p2.jpg", "users/me/p3.jpg",
                         "users/me/p4.jpg" };
  SrvPhoto *photos[G_N_ELEMENTS (keys)];
  g_autoptr(GPtrArray) evs = NULL;
  SrvJobState state;

  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    {
      photos[i] = register_key (f->db, me, keys[i], NULL);
      f->now += 1;  /* lease order follows registration */
    }

  /* The stale owner finishes first: its tags stand, the fresh owner's completion is a no-op. */
  {
    g_autoptr(SrvJob) stale = NULL;
    g_autoptr(SrvJob) fresh = NULL;
    g_autoptr(SrvPhoto) p = NULL;

    expire_and_release (f, photos[0]->id, &stale, &fresh);
    g_assert_true (complete (f->db, stale, "A", "from-a"));
    g_assert_false (complete (f->db, fresh, "B", "from-b"));
    p = get_photo (f->db, me, photos[0]->id);
    g_assert_cmpuint (p->tags->len, ==, 2);
    g_assert_cmpstr (g_array_index (p->tags, SrvTag, 0).label, ==, "from-a");
  }
  /* The other order: the fresh owner wins, the stale one is ignored. */
  {
    g_autoptr(SrvJob) stale = NULL;
    g_autoptr(SrvJob) fresh = NULL;
    g_autoptr(SrvPhoto) p = NULL;

    expire_and_release (f, photos[1]->id, &stale, &fresh);
    g_assert_true (complete (f->db, fresh, "B", "from-b"));
    g_assert_false (complete (f->db, stale, "A", "from-a"));
    p = get_photo (f->db, me, photos[1]->id);
    g_assert_cmpuint (p->tags->len, ==, 2);
    g_assert_cmpstr (g_array_index (p->tags, SrvTag, 0).label, ==, "from-b");
  }
  /* A stale owner cannot fail (and so requeue) a job someone else now holds. */
  {
    g_autoptr(SrvJob) stale = NULL;
    g_autoptr(SrvJob) fresh = NULL;

    expire_and_release (f, photos[2]->id, &stale, &fresh);
    g_assert_false (srv_db_fail_job (f->db, stale->id, "A", "late", TRUE, &state, &error));
    g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT);
    g_clear_error (&error);
    g_assert_true (complete (f->db, fresh, "B", "from-b"));
  }
  /* A photo whose every lease runs out (the worker dies on it) is dead-lettered. */
  for (int i = 0; i < SRV_DB_JOB_MAX_ATTEMPTS; i++)
    {
      g_autoptr(GPtrArray) jobs = lease (f->db, "crashy", 1);

      g_assert_cmpuint (jobs->len, ==, 1);
      g_assert_cmpint (((SrvJob *) jobs->pdata[0])->attempts, ==, i + 1);
      f->now += LEASE_US + 1;
    }
  {
    g_autoptr(GPtrArray) none = lease (f->db, "crashy", 1);
    g_autoptr(SrvPhoto) p = get_photo (f->db, me, photos[3]->id);
    SrvQueueStats s = stats (f->db);

    g_assert_cmpuint (none->len, ==, 0);
    g_assert_cmpint (p->state, ==, SRV_PHOTO_FAILED);
    g_assert_nonnull (p->error);
    g_assert_cmpint (s.done, ==, 3);
    g_assert_cmpint (s.dead, ==, 1);
    g_assert_cmpint (s.expired, ==, 3 + SRV_DB_JOB_MAX_ATTEMPTS - 1);
  }

  evs = events (f->db, me);
  for (int i = 0; i < 3; i++)
    g_assert_cmpuint (count_events (evs, SRV_EVENT_PHOTO_TAGGED, photos[i]->id), ==, 1);
  g_assert_cmpuint (count_events (evs, SRV_EVENT_PHOTO_FAILED, photos[3]->id), ==, 1);
  for (gsize i = 0; i < G_N_ELEMENTS (photos); i++)
    srv_photo_free (photos[i]);
}

static void
test_requeue_on_reopen (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *me = new_guest (f->db);
  g_autoptr(GPtrArray) first = NULL;
  g_autoptr(GPtrArray) after = NULL;
  SrvQueueStats s;

  for (int i = 0; i < 3; i++)
    {
      g_autofree char *key = g_strdup_printf ("users/me/%d.jpg", i);
      g_autoptr(SrvPhoto) p = register_key (f->db, me, key, NULL);
    }
  first = lease (f->db, "old-process", 2);
  g_assert_cmpuint (first->len, ==, 2);

  reopen (f);
  s = stats (f->db);
  g_assert_cmpint (s.leased, ==, 2);
  g_assert_cmpint (srv_db_requeue_leased (f->db, &error), ==, 2);
  g_assert_no_error (error);
  s = stats (f->db);
  g_assert_cmpint (s.leased, ==, 0);
  g_assert_cmpint (s.queued, ==, 3);
  for (guint i = 0; i < first->len; i++)
    {
      g_autoptr(SrvPhoto) p = get_photo (f->db, me, ((SrvJob *) first->pdata[i])->photo_id);

      g_assert_cmpint (p->state, ==, SRV_PHOTO_QUEUED);
    }
  after = lease (f->db, "new-process", 10);  /* the clock has not moved: due at once */
  g_assert_cmpuint (after->len, ==, 3);
  g_assert_cmpint (srv_db_requeue_leased (f->db, &error), ==, 3);
}

static void
test_delete_while_leased (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *me = new_guest (f->db);
  g_autoptr(SrvPhoto) photo = register_key (f->db, me, "users/me/gone.jpg", NULL);
  g_autoptr(GPtrArray) jobs = lease (f->db, "w", 1);
  g_autofree char *key = NULL;
  SrvTag tag = { (char *) "cat", 0.5 };

  g_assert_cmpuint (jobs->len, ==, 1);
  key = srv_db_delete_photo (f->db, me, photo->id, &error);
  g_assert_no_error (error);
  g_assert_false (srv_db_complete_job (f->db, ((SrvJob *) jobs->pdata[0])->id, "w", "m", &tag, 1,
                                       NULL, &error));
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (srv_db_fail_job (f->db, ((SrvJob *) jobs->pdata[0])->id, "w", "x", TRUE, NULL,
                                   &error));
  g_assert_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_true (srv_db_check_integrity (f->db, &error));
  g_assert_no_error (error);
}

typedef struct {
  SrvDb      *db;
  GMutex      lock;
  GHashTable *leases;      /* job id -> times leased */
  guint       completed;
  guint       notified;
} Shared;

static gpointer
worker_thread (gpointer data)
{
  Shared *sh = data;
  g_autofree char *owner = g_strdup_printf ("worker-%p", (void *) g_thread_self ());

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) jobs = srv_db_lease_jobs (sh->db, owner, 8, LEASE_US, &error);

      g_assert_no_error (error);
      if (jobs->len == 0)
        break;
      for (guint i = 0; i < jobs->len; i++)
        {
          SrvJob *job = jobs->pdata[i];
          SrvTag tag = { (char *) "cat", 0.5 };
          gboolean applied = FALSE;

          g_mutex_lock (&sh->lock);
          g_hash_table_insert (sh->leases, g_strdup (job->id),
                               GUINT_TO_POINTER (GPOINTER_TO_UINT (
                                 g_hash_table_lookup (sh->leases, job->id)) + 1));
          g_mutex_unlock (&sh->lock);
          g_assert_true (srv_db_complete_job (sh->db, job->id, owner, "m", &tag, 1, &applied,
                                              &error));
          g_assert_no_error (error);
          g_assert_true (applied);
          g_atomic_int_inc (&sh->completed);
        }
    }
  return NULL;
}

static void
count_notification (const char *identity_id, gint64 event_id, gpointer user_data)
{
  Shared *sh = user_data;

  sh->notified++;  /* callbacks run one at a time, under the watch lock */
}

static void
test_concurrency (Fixture *f, gconstpointer data)
{
  enum { N_PHOTOS = 500, N_THREADS = 4, N_IDENTITIES = 5 };
  Shared sh = { .db = f->db };
  GThread *threads[N_THREADS];
  char *ids[N_IDENTITIES];
  guint total_tagged = 0;
  guint watch;
  SrvQueueStats s;

  g_mutex_init (&sh.lock);
  sh.leases = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  watch = srv_db_add_event_watch (f->db, count_notification, &sh, NULL);
  for (int i = 0; i < N_IDENTITIES; i++)
    ids[i] = new_guest (f->db);
  for (int i = 0; i < N_PHOTOS; i++)
    {
      g_autofree char *key = g_strdup_printf ("users/x/%d.jpg", i);
      g_autoptr(SrvPhoto) p = register_key (f->db, ids[i % N_IDENTITIES], key, NULL);
    }
  for (int i = 0; i < N_THREADS; i++)
    threads[i] = g_thread_new ("worker", worker_thread, &sh);
  for (int i = 0; i < N_THREADS; i++)
    g_thread_join (threads[i]);
  srv_db_remove_event_watch (f->db, watch);

  g_assert_cmpuint (sh.completed, ==, N_PHOTOS);
  g_assert_cmpuint (g_hash_table_size (sh.leases), ==, N_PHOTOS);
  {
    GHashTableIter iter;
    gpointer times;

    g_hash_table_iter_init (&iter, sh.leases);
    while (g_hash_table_iter_next (&iter, NULL, &times))
      g_assert_cmpuint (GPOINTER_TO_UINT (times), ==, 1);  /* never leased twice */
  }
  s = stats (f->db);
  g_assert_cmpint (s.done, ==, N_PHOTOS);
  g_assert_cmpint (s.queued + s.leased, ==, 0);
  for (int i = 0; i < N_IDENTITIES; i++)
    {
      g_autoptr(GPtrArray) evs = events (f->db, ids[i]);
      SrvPhotoQuery q = { .tag = "CAT", .limit = SRV_DB_LIST_LIMIT_MAX };
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) list = srv_db_list_photos (f->db, ids[i], &q, NULL, &error);

      g_assert_no_error (error);
      g_assert_cmpuint (list->len, ==, N_PHOTOS / N_IDENTITIES);
      for (guint p = 0; p < list->len; p++)
        {
          SrvPhoto *photo = list->pdata[p];

          g_assert_cmpint (photo->state, ==, SRV_PHOTO_TAGGED);
          g_assert_cmpuint (photo->tags->len, ==, 1);
          g_assert_cmpuint (count_events (evs, SRV_EVENT_PHOTO_TAGGED, photo->id), ==, 1);
        }
      total_tagged += count_events (evs, SRV_EVENT_PHOTO_TAGGED, NULL);
      for (guint e = 1; e < evs->len; e++)
        g_assert_cmpint (((SrvEvent *) evs->pdata[e])->id, >,
                         ((SrvEvent *) evs->pdata[e - 1])->id);
      g_free (ids[i]);
    }
  g_assert_cmpuint (total_tagged, ==, N_PHOTOS);
  g_assert_cmpuint (sh.notified, ==, 2 * N_PHOTOS);
  g_hash_table_unref (sh.leases);
  g_mutex_clear (&sh.lock);
}

static gpointer
register_later (gpointer data)
{
  Fixture *f = data;
  g_autofree char *someone = NULL;

  g_usleep (50 * 1000);
  someone = new_guest (f->db);
  srv_photo_free (register_key (f->db, someone, "users/someone/1.jpg", NULL));
  return NULL;
}

static void
test_events (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *me = new_guest (f->db);
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GPtrArray) page = NULL;
  g_autoptr(GPtrArray) rest = NULL;
  g_autoptr(GPtrArray) fresh = NULL;
  guint64 generation = srv_db_event_generation (f->db);
  gint64 newest;

  g_assert_cmpuint (srv_db_wait_events (f->db, generation, 1000), ==, generation);

  /* A waiter on another thread wakes when the commit lands, long before its timeout. */
  {
    gint64 start = g_get_monotonic_time ();
    GThread *writer;

    generation = srv_db_event_generation (f->db);
    writer = g_thread_new ("writer", register_later, f);
    g_assert_cmpuint (srv_db_wait_events (f->db, generation, 60 * G_USEC_PER_SEC), >,
                      generation);
    g_assert_cmpint (g_get_monotonic_time () - start, <, 30 * G_USEC_PER_SEC);
    g_thread_join (writer);
  }
  generation = srv_db_event_generation (f->db);
  for (int i = 0; i < 5; i++)
    {
      g_autofree char *key = g_strdup_printf ("users/me/%d.jpg", i);
      g_autoptr(SrvPhoto) p = register_key (f->db, me, key, NULL);
    }
  g_assert_cmpuint (srv_db_wait_events (f->db, generation, 0), >, generation);

  all = events (f->db, me);
  g_assert_cmpuint (all->len, ==, 5);
  page = srv_db_events_since (f->db, me, ((SrvEvent *) all->pdata[1])->id, 2, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, 2);
  g_assert_cmpint (((SrvEvent *) page->pdata[0])->id, ==, ((SrvEvent *) all->pdata[2])->id);
  g_assert_cmpint (((SrvEvent *) page->pdata[1])->id, ==, ((SrvEvent *) all->pdata[3])->id);
  g_assert_cmpint (((SrvEvent *) page->pdata[0])->created_at, ==, T0);

  /* Past the retention everything goes but the newest, so ids keep growing. */
  newest = ((SrvEvent *) all->pdata[4])->id;
  f->now += SRV_DB_EVENT_RETENTION_US - 1;
  g_assert_cmpint (srv_db_prune_events (f->db, &error), ==, 0);
  f->now += 2;
  g_assert_cmpint (srv_db_prune_events (f->db, &error), ==, 5);  /* someone's one and 4 of mine */
  g_assert_no_error (error);
  rest = events (f->db, me);
  g_assert_cmpuint (rest->len, ==, 1);
  g_assert_cmpint (((SrvEvent *) rest->pdata[0])->id, ==, newest);
  {
    g_autoptr(SrvPhoto) p = register_key (f->db, me, "users/me/late.jpg", NULL);
  }
  fresh = srv_db_events_since (f->db, me, newest, 10, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (fresh->len, ==, 1);
  g_assert_cmpint (((SrvEvent *) fresh->pdata[0])->id, >, newest);
}

static void
test_photo_json (void)
{
  g_autoptr(GArray) tags = srv_tag_array_new ();
  SrvTag tag = { g_strdup ("tabby cat"), 0.75 };
  SrvPhoto photo = {
    .id = (char *) "P1", .identity_id = (char *) "I1", .key = (char *) "users/I1/ab.jpg",
    .size = 1234, .content_type = (char *) "image/jpeg", .width = 640, .height = 480,
    .sha256 = (char *) "ab", .state = SRV_PHOTO_TAGGED, .model = (char *) "mobilenet",
    .created_at = T0 + 123, .tagged_at = T0 + G_USEC_PER_SEC,
  };
  g_autofree char *json = NULL;
  g_autofree char *untagged = NULL;

  g_array_append_val (tags, tag);
  photo.tags = tags;
  json = srv_photo_to_json (&photo);
  g_assert_cmpstr (json, ==,
                   "{\"id\":\"P1\",\"key\":\"users/I1/ab.jpg\",\"size\":1234,"
                   "\"content_type\":\"image/jpeg\",\"width\":640,\"height\":480,"
                   "\"sha256\":\"ab\",\"state\":\"tagged\","
                   "\"tags\":[{\"label\":\"tabby cat\",\"confidence\":0.75}],"
                   "\"model\":\"mobilenet\",\"created_at\":\"2027-01-15T08:00:00.000123Z\","
                   "\"tagged_at\":\"2027-01-15T08:00:01.000000Z\",\"error\":null}");
  photo.tags = NULL;
  photo.state = SRV_PHOTO_FAILED;
  photo.model = NULL;
  photo.tagged_at = 0;
  photo.error = (char *) "too \"big\"";
  untagged = srv_photo_to_json (&photo);
  g_assert_nonnull (strstr (untagged, "\"tags\":[],\"model\":null,"));
  g_assert_nonnull (strstr (untagged, "\"tagged_at\":null,\"error\":\"too \\\"big\\\"\"}"));
}

/* Durability: a child registers and completes as fast as it can and reports each call that
 * returned; we SIGKILL it at a random moment and every reported write must be there. */
static int
crash_child (const char *location, const char *identity_id, const char *round)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvDb) db = srv_db_open (location, &error);

  if (db == NULL)
    {
      g_printerr ("crash child: %s\n", error->message);
      return 1;
    }
  for (int i = 0;; i++)
    {
      g_autofree char *key = g_strdup_printf ("users/%s/r%s-%d.jpg", identity_id, round, i);
      g_autoptr(SrvPhoto) photo = register_key (db, identity_id, key, NULL);
      g_autoptr(GPtrArray) jobs = lease (db, "child", 1);

      g_print ("P %s\n", photo->id);
      if (jobs->len == 1 && complete (db, jobs->pdata[0], "child", "cat"))
        g_print ("C %s\n", ((SrvJob *) jobs->pdata[0])->photo_id);
      fflush (stdout);
    }
  return 0;
}

/* Whatever the kill interrupted left no half: each photo has its job and one photo.created
 * event, each tag set its photo.tagged event and its count in the totals. */
static void
check_all_or_nothing (SrvDb *db, const char *identity_id)
{
  g_autoptr(GPtrArray) evs = events (db, identity_id);
  g_autofree char *cursor = NULL;
  SrvQueueStats s = stats (db);
  guint n_photos = 0;
  guint n_tagged = 0;

  do
    {
      SrvPhotoQuery q = { .limit = SRV_DB_LIST_LIMIT_MAX, .cursor = cursor };
      g_autoptr(GError) error = NULL;
      g_autofree char *next = NULL;
      g_autoptr(GPtrArray) page = srv_db_list_photos (db, identity_id, &q, &next, &error);

      g_assert_no_error (error);
      for (guint i = 0; i < page->len; i++)
        {
          SrvPhoto *p = page->pdata[i];
          gboolean tagged = p->state == SRV_PHOTO_TAGGED;

          g_assert_cmpuint (count_events (evs, SRV_EVENT_PHOTO_CREATED, p->id), ==, 1);
          g_assert_cmpuint (count_events (evs, SRV_EVENT_PHOTO_TAGGED, p->id), ==, tagged);
          g_assert_cmpuint (p->tags->len, ==, tagged ? 2 : 0);
          n_photos++;
          n_tagged += tagged;
        }
      g_free (cursor);
      cursor = g_steal_pointer (&next);
    }
  while (cursor != NULL);
  g_assert_cmpint (s.done, ==, n_tagged);
  g_assert_cmpint (s.queued + s.leased + s.done, ==, n_photos);
}

static void
test_durability (Fixture *f, gconstpointer data)
{
  g_autofree char *me = new_guest (f->db);
  g_autoptr(GPtrArray) acked = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) completed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GError) error = NULL;

  g_clear_pointer (&f->db, srv_db_close);
  for (int round = 0; round < 4; round++)
    {
      g_autofree char *round_text = g_strdup_printf ("%d", round);
      g_autoptr(GSubprocess) child = NULL;
      g_autoptr(GDataInputStream) out = NULL;
      guint kill_after = g_random_int_range (20, 120);
      guint lines = 0;
      char *line;

      child = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, self_exe,
                                "--crash-child", f->location, me, round_text, NULL);
      g_assert_no_error (error);
      out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child));
      while (lines < kill_after &&
             (line = g_data_input_stream_read_line (out, NULL, NULL, &error)) != NULL)
        {
          if (g_str_has_prefix (line, "P "))
            g_ptr_array_add (acked, g_strdup (line + 2));
          else if (g_str_has_prefix (line, "C "))
            g_hash_table_add (completed, g_strdup (line + 2));
          g_free (line);
          lines++;
        }
      g_assert_no_error (error);
      g_assert_cmpuint (lines, ==, kill_after);
      g_usleep (g_random_int_range (0, 3000));
      g_subprocess_send_signal (child, SIGKILL);
      g_subprocess_wait (child, NULL, &error);
      g_assert_no_error (error);
      g_assert_true (g_subprocess_get_if_signaled (child));
      g_assert_cmpint (g_subprocess_get_term_sig (child), ==, SIGKILL);

      f->db = open_backend_under_test (f);
      g_assert_true (srv_db_check_integrity (f->db, &error));
      g_assert_no_error (error);
      for (guint i = 0; i < acked->len; i++)
        {
          g_autoptr(SrvPhoto) p = get_photo (f->db, me, acked->pdata[i]);

          if (g_hash_table_contains (completed, acked->pdata[i]))
            {
              g_assert_cmpint (p->state, ==, SRV_PHOTO_TAGGED);
              g_assert_cmpuint (p->tags->len, ==, 2);
            }
        }
      check_all_or_nothing (f->db, me);
      /* What the dead child had leased comes back, as after a real crash. */
      g_assert_cmpint (srv_db_requeue_leased (f->db, &error), >=, 0);
      g_assert_no_error (error);
      g_clear_pointer (&f->db, srv_db_close);
    }
  g_assert_cmpuint (acked->len, >, 0);
  g_assert_cmpuint (g_hash_table_size (completed), >, 0);
  f->db = open_backend_under_test (f);
}

/* Lease contention across processes: children that share nothing but the catalog lease from
 * one queue in batches and complete what they got; each prints "L <job id>" per lease. */
static gint64 child_now;

static gint64
child_clock (gpointer user_data)
{
  return child_now;
}

static int
lease_child (const char *location, const char *owner, const char *now_text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvDb) db = srv_db_open (location, &error);
  g_autoptr(GDataInputStream) in = NULL;
  g_autofree char *go = NULL;

  if (db == NULL)
    {
      g_printerr ("lease child: %s\n", error->message);
      return 1;
    }
  child_now = g_ascii_strtoll (now_text, NULL, 10);
  srv_db_set_clock (db, child_clock, NULL);
  /* Ready, then wait for the word: every child starts leasing at the same moment. */
  g_print ("READY\n");
  fflush (stdout);
  in = g_data_input_stream_new (g_unix_input_stream_new (0, FALSE));
  go = g_data_input_stream_read_line (in, NULL, NULL, NULL);
  for (;;)
    {
      g_autoptr(GPtrArray) jobs = srv_db_lease_jobs (db, owner, 3, LEASE_US, &error);

      if (jobs == NULL)
        {
          g_printerr ("lease child: %s\n", error->message);
          return 1;
        }
      if (jobs->len == 0)
        return 0;
      for (guint i = 0; i < jobs->len; i++)
        {
          SrvJob *job = jobs->pdata[i];
          SrvTag tag = { (char *) "cat", 0.5 };
          gboolean applied = FALSE;

          g_print ("L %s\n", job->id);
          /* A worker spends time on each job outside the database (the model
           * run); without it one process can drain the queue before the
           * others have been scheduled at all on an idle box. */
          g_usleep (2 * G_TIME_SPAN_MILLISECOND);
          if (!srv_db_complete_job (db, job->id, owner, "m", &tag, 1, &applied, &error))
            {
              g_printerr ("lease child: %s\n", error->message);
              return 1;
            }
          if (!applied)
            g_print ("DUPLICATE %s\n", job->id);
        }
      fflush (stdout);
    }
}

static void
test_lease_processes (Fixture *f, gconstpointer data)
{
  enum { N_PHOTOS = 240, N_PROCS = 4 };
  g_autofree char *me = new_guest (f->db);
  g_autofree char *now_text = g_strdup_printf ("%" G_GINT64_FORMAT, f->now);
  g_autoptr(GHashTable) leased = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GSubprocess *children[N_PROCS];
  GDataInputStream *outs[N_PROCS];
  guint busy_children = 0;
  guint total = 0;
  SrvQueueStats s;

  for (int i = 0; i < N_PHOTOS; i++)
    {
      g_autofree char *key = g_strdup_printf ("users/me/%d.jpg", i);
      g_autoptr(SrvPhoto) p = register_key (f->db, me, key, NULL);
    }
  for (int i = 0; i < N_PROCS; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *owner = g_strdup_printf ("process-%d", i);
      g_autofree char *line = NULL;

      children[i] = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                      G_SUBPROCESS_FLAGS_STDIN_PIPE, &error, self_exe,
                                      "--lease-child", f->location, owner, now_text, NULL);
      g_assert_no_error (error);
      outs[i] = g_data_input_stream_new (g_subprocess_get_stdout_pipe (children[i]));
      line = g_data_input_stream_read_line (outs[i], NULL, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (line, ==, "READY");
    }
  for (int i = 0; i < N_PROCS; i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (g_output_stream_write_all (g_subprocess_get_stdin_pipe (children[i]),
                                                "GO\n", 3, NULL, NULL, &error));
      g_assert_no_error (error);
    }
  for (int i = 0; i < N_PROCS; i++)
    {
      g_autoptr(GError) error = NULL;
      guint mine = 0;
      char *line;

      while ((line = g_data_input_stream_read_line (outs[i], NULL, NULL, &error)) != NULL)
        {
          g_assert_false (g_str_has_prefix (line, "DUPLICATE"));
          g_assert_true (g_str_has_prefix (line, "L "));
          g_hash_table_insert (leased, g_strdup (line + 2),
                               GUINT_TO_POINTER (GPOINTER_TO_UINT (
                                 g_hash_table_lookup (leased, line + 2)) + 1));
          mine++;
          g_free (line);
        }
      g_assert_no_error (error);
      g_assert_true (g_subprocess_wait_check (children[i], NULL, &error));
      g_assert_no_error (error);
      g_test_message ("process-%d leased %u jobs", i, mine);
      busy_children += mine > 0;
      total += mine;
      g_object_unref (outs[i]);
      g_object_unref (children[i]);
    }

  /* Every job leased exactly once, by one of them; more than one took part. */
  g_assert_cmpuint (total, ==, N_PHOTOS);
  g_assert_cmpuint (g_hash_table_size (leased), ==, N_PHOTOS);
  {
    GHashTableIter iter;
    gpointer times;

    g_hash_table_iter_init (&iter, leased);
    while (g_hash_table_iter_next (&iter, NULL, &times))
      g_assert_cmpuint (GPOINTER_TO_UINT (times), ==, 1);
  }
  g_assert_cmpuint (busy_children, >=, 2);
  s = stats (f->db);
  g_assert_cmpint (s.done, ==, N_PHOTOS);
  g_assert_cmpint (s.queued + s.leased + s.expired + s.retried, ==, 0);
  {
    g_autoptr(GPtrArray) evs = events (f->db, me);

    g_assert_cmpuint (count_events (evs, SRV_EVENT_PHOTO_TAGGED, NULL), ==, N_PHOTOS);
  }
}

int
main (int argc, char *argv[])
{
  if (argc == 5 && g_strcmp0 (argv[1], "--crash-child") == 0)
    return crash_child (argv[2], argv[3], argv[4]);
  if (argc == 5 && g_strcmp0 (argv[1], "--lease-child") == 0)
    return lease_child (argv[2], argv[3], argv[4]);

  self_exe = g_canonicalize_filename (argv[0], NULL);
  g_test_init (&argc, &argv, NULL);
#define ADD(path, func) g_test_add ("/srv/db/" path, Fixture, NULL, fixture_setup, func, \
                                    fixture_teardown)
  ADD ("migrations", test_migrations);
  ADD ("identity", test_identity);
  ADD ("register-idempotent", test_register_idempotent);
  ADD ("isolation", test_isolation);
  ADD ("list-pagination", test_list_pagination);
  g_test_add_func ("/srv/db/backoff", test_backoff);
  ADD ("lease-complete-fail", test_lease_complete_fail);
  ADD ("lease-expiry", test_lease_expiry);
  ADD ("requeue-on-reopen", test_requeue_on_reopen);
  ADD ("delete-while-leased", test_delete_while_leased);
  ADD ("concurrency", test_concurrency);
  ADD ("lease-processes", test_lease_processes);
  ADD ("events", test_events);
  g_test_add_func ("/srv/db/photo-json", test_photo_json);
  ADD ("durability", test_durability);
#undef ADD
  return g_test_run ();
}
