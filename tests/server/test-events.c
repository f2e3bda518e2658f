/* test-events.c - SSE framing, and GET /v1/events against a real magpied */
#include "config.h"

#include <string.h>

#include "mp-test-sse.h"
#include "mp-test-util.h"
#include "srv-db.h"
#include "srv-sse.h"

/* Framing, without sockets */

static void
test_sse_event (void)
{
  g_autoptr(GString) out = g_string_new (NULL);

  srv_sse_append_event (out, 7, "photo.created", "{\"id\":\"x\"}");
  g_assert_cmpstr (out->str, ==, "id: 7\nevent: photo.created\ndata: {\"id\":\"x\"}\n\n");

  /* Every line break kind becomes its own data: line; nothing can end the event early. */
  g_string_truncate (out, 0);
  srv_sse_append_event (out, 8, "photo.tagged", "a\nb\r\nc\rd\n\ne");
  g_assert_cmpstr (out->str, ==,
                   "id: 8\nevent: photo.tagged\n"
                   "data: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: e\n\n");

  g_string_truncate (out, 0);
  srv_sse_append_event (out, G_MAXINT64, "photo.deleted", "");
  g_assert_cmpstr (out->str, ==, "id: 9223372036854775807\nevent: photo.deleted\ndata: \n\n");

  g_string_truncate (out, 0);
  srv_sse_append_comment (out, "keep-alive");
  srv_sse_append_comment (out, "two\nlines");
  srv_sse_append_retry (out, 3000);
  g_assert_cmpstr (out->str, ==, ": keep-alive\n\n: two\n: lines\n\nretry: 3000\n\n");
}

static void
test_sse_last_event_id (void)
{
  static const char *bad[] = {
    "", " 1", "1 ", "-1", "+1", "1.0", "0x10", "abc", "9223372036854775808",
    "99999999999999999999999",
  };
  gint64 id = -5;

  g_assert_true (srv_sse_parse_last_event_id ("0", &id));
  g_assert_cmpint (id, ==, 0);
  g_assert_true (srv_sse_parse_last_event_id ("42", &id));
  g_assert_cmpint (id, ==, 42);
  g_assert_true (srv_sse_parse_last_event_id ("9223372036854775807", &id));
  g_assert_cmpint (id, ==, G_MAXINT64);
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      id = -5;
      g_assert_false (srv_sse_parse_last_event_id (bad[i], &id));
      g_assert_cmpint (id, ==, -5);
    }
  g_assert_false (srv_sse_parse_last_event_id (NULL, &id));
}

/* Live */

typedef struct {
  MpTestServer *server;
  SoupSession  *session;
  SrvDb        *db;        /* the server's catalog, opened beside it (WAL or PostgreSQL) */
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *catalog = NULL;
  /* These photos are written straight into the catalog with no object behind them; with a
   * photo model the workers would fail them and interleave photo.failed events with the
   * ones under test. A model that is not there keeps their jobs waiting. */
  const char *args[] = { "--photo-model=/nonexistent/no-tagging-in-this-test.onnx", NULL };

  f->server = mp_test_server_start (NULL, args, &error);
  g_assert_no_error (error);
  f->session = soup_session_new ();
  catalog = mp_test_db_location (f->server->data_dir);
  f->db = srv_db_open (catalog, &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_pointer (&f->db, srv_db_close);
  g_clear_object (&f->session);
  g_clear_pointer (&f->server, mp_test_server_free);
}

static JsonNode *
call (Fixture    *f,
      const char *method,
      const char *path,
      const char *token,
      const char *body,
      guint      *status)
{
  g_autofree char *url = g_strconcat (f->server->url, path, NULL);

  return mp_test_http_call (f->session, method, url, token, body, status, NULL);
}

/* A guest and a session token for it. */
static char *
new_token (Fixture  *f,
           char    **identity_id)
{
  guint status = 0;
  g_autoptr(JsonNode) guest = call (f, "POST", "/v1/identities", NULL, NULL, &status);
  g_autoptr(JsonNode) creds = NULL;
  g_autofree char *body = NULL;
  JsonObject *o;

  g_assert_cmpuint (status, ==, 201);
  o = json_node_get_object (guest);
  body = g_strdup_printf ("{\"identity_id\":\"%s\",\"secret\":\"%s\"}",
                          json_object_get_string_member (o, "identity_id"),
                          json_object_get_string_member (o, "secret"));
  *identity_id = g_strdup (json_object_get_string_member (o, "identity_id"));
  creds = call (f, "POST", "/v1/credentials", NULL, body, &status);
  g_assert_cmpuint (status, ==, 200);
  return g_strdup (json_object_get_string_member (json_node_get_object (creds), "session_token"));
}

/* Registers a photo straight in the catalog (the S3 front is not needed for events): the
 * catalog records photo.created, which a Last-Event-ID replay reads back. */
static char *
add_photo (Fixture    *f,
           const char *identity_id,
           int         n)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key = g_strdup_printf ("users/%s/%d.jpg", identity_id, n);
  g_autofree char *sha = g_strnfill (64, 'a');
  gboolean created = FALSE;
  g_autoptr(SrvPhoto) photo = srv_db_register_photo (f->db, identity_id, key, 1000 + n,
                                                     "image/jpeg", sha, 0, 0, &created, &error);

  g_assert_no_error (error);
  g_assert_true (created);
  return g_strdup (photo->id);
}

static MpTestSse *
open_stream (Fixture    *f,
             const char *token,
             const char *last_event_id)
{
  g_autofree char *url = g_strconcat (f->server->url, "/v1/events", NULL);
  g_autoptr(GError) error = NULL;
  guint status = 0;
  MpTestSse *sse = mp_test_sse_open (url, token, last_event_id, 10, &status, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (status, ==, 200);
  g_assert_nonnull (sse);
  return sse;
}

/* The next event, which must be @type about photo @photo_id; returns its id. */
static gint64
expect_event (MpTestSse  *sse,
              const char *type,
              const char *photo_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpTestSseEvent) e = mp_test_sse_next (sse, &error);
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *photo;

  g_assert_no_error (error);
  g_assert_cmpstr (e->event, ==, type);
  g_assert_nonnull (e->id);
  g_assert_true (json_parser_load_from_data (parser, e->data, -1, NULL));
  photo = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (photo, "id"), ==, photo_id);
  return g_ascii_strtoll (e->id, NULL, 10);
}

static void
test_events_errors (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *id = NULL;
  g_autofree char *token = new_token (f, &id);
  g_autofree char *url = g_strconcat (f->server->url, "/v1/events", NULL);
  static const struct {
    const char *token;
    const char *last_event_id;
    guint       status;
  } cases[] = {
    { NULL, NULL, 401 },
    { "forged", NULL, 401 },
    { "", "1", 401 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      guint status = 0;
      g_autoptr(MpTestSse) sse = mp_test_sse_open (url, cases[i].token, cases[i].last_event_id,
                                                   10, &status, &error);

      g_assert_no_error (error);
      g_assert_null (sse);
      g_assert_cmpuint (status, ==, cases[i].status);
    }
  {
    static const char *bad_ids[] = { "x", "-1", "1.5", "99999999999999999999" };

    for (gsize i = 0; i < G_N_ELEMENTS (bad_ids); i++)
      {
        g_autoptr(GError) error = NULL;
        guint status = 0;
        g_autoptr(MpTestSse) sse = mp_test_sse_open (url, token, bad_ids[i], 10, &status, &error);

        g_assert_no_error (error);

        g_assert_null (sse);
        g_assert_cmpuint (status, ==, 400);
      }
  }
  {
    guint status = 0;
    g_autoptr(JsonNode) node = call (f, "POST", "/v1/events", token, "{}", &status);

    g_assert_cmpuint (status, ==, 405);
    g_clear_pointer (&node, json_node_unref);
    node = call (f, "GET", "/v1/events/x", token, NULL, &status);
    g_assert_cmpuint (status, ==, 404);
  }
}

/* Live delivery: a stream sees its own identity's events as they commit, in id order, and
 * nobody else's; the subscriber gauge follows connects and disconnects. */
static void
test_events_live (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *a = NULL;
  g_autofree char *token_a = new_token (f, &a);
  g_autofree char *b = NULL;
  g_autofree char *token_b = new_token (f, &b);
  g_autofree char *a1 = add_photo (f, a, 1);
  g_autofree char *a2 = add_photo (f, a, 2);
  g_autofree char *b1 = add_photo (f, b, 1);
  g_autofree char *query_url = g_strdup_printf ("%s/v1/events?access_token=%s",
                                                f->server->url, token_a);
  g_autofree char *metrics_url = g_strconcat (f->server->url, "/metrics", NULL);
  g_autoptr(MpTestSse) sse = open_stream (f, token_a, NULL);
  g_autoptr(MpTestSse) by_query = NULL;
  SoupMessageHeaders *headers = mp_test_sse_headers (sse);
  gint64 first, second;
  guint status = 0;

  g_assert_true (g_str_has_prefix (soup_message_headers_get_content_type (headers, NULL),
                                   "text/event-stream"));
  g_assert_cmpstr (soup_message_headers_get_one (headers, "Cache-Control"), ==, "no-cache");
  g_assert_cmpint (soup_message_headers_get_encoding (headers), ==, SOUP_ENCODING_CHUNKED);

  /* EventSource cannot set headers: the query parameter works too. */
  {
    g_autoptr(GError) error = NULL;

    by_query = mp_test_sse_open (query_url, NULL, NULL, 10, &status, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (status, ==, 200);
  }
  {
    g_autofree char *text = mp_test_http_text (f->session, "GET", metrics_url, &status);

    g_assert_nonnull (strstr (text, "magpied_sse_subscribers 2\n"));
  }

  /* The photos registered before connecting are history: deletes are the news. */
  {
    g_autofree char *path = g_strconcat ("/v1/photos/", b1, NULL);
    g_autoptr(JsonNode) node = call (f, "DELETE", path, token_b, NULL, &status);

    g_assert_cmpuint (status, ==, 204);
  }
  {
    g_autofree char *path = g_strconcat ("/v1/photos/", a2, NULL);
    g_autoptr(JsonNode) node = call (f, "DELETE", path, token_a, NULL, &status);

    g_assert_cmpuint (status, ==, 204);
  }
  {
    g_autofree char *path = g_strconcat ("/v1/photos/", a1, NULL);
    g_autoptr(JsonNode) node = call (f, "DELETE", path, token_a, NULL, &status);

    g_assert_cmpuint (status, ==, 204);
  }
  first = expect_event (sse, "photo.deleted", a2);
  second = expect_event (sse, "photo.deleted", a1);
  g_assert_cmpint (second, >, first);
  g_assert_cmpuint (mp_test_sse_retry (sse), ==, 3000);
  g_assert_cmpuint (mp_test_sse_comments (sse), >=, 1);
  g_assert_cmpint (expect_event (by_query, "photo.deleted", a2), ==, first);

  g_clear_pointer (&sse, mp_test_sse_close);
  g_clear_pointer (&by_query, mp_test_sse_close);
  /* A server learns a client left when a write fails: more news for this identity makes it
   * write (the keep-alive does the same every 15 s for a quiet one). */
  for (int i = 0; i < 100; i++)
    {
      g_autofree char *text = mp_test_http_text (f->session, "GET", metrics_url, &status);

      if (strstr (text, "magpied_sse_subscribers 0\n"))
        break;
      g_assert_cmpint (i, <, 99);
      if (i < 4)
        {
          g_autofree char *photo = add_photo (f, a, 100 + i);
          g_autofree char *path = g_strconcat ("/v1/photos/", photo, NULL);
          g_autoptr(JsonNode) node = call (f, "DELETE", path, token_a, NULL, &status);

          g_assert_cmpuint (status, ==, 204);
        }
      g_usleep (50 * 1000);
    }
}

/* Resume: Last-Event-ID replays what came after it, from the catalog, then goes live. */
static void
test_events_resume (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *a = NULL;
  g_autofree char *token = new_token (f, &a);
  g_autofree char *other = NULL;
  g_autofree char *other_token = new_token (f, &other);  /* only for its identity */
  g_autofree char *p1 = add_photo (f, a, 1);
  g_autofree char *o1 = add_photo (f, other, 1);
  g_autofree char *p2 = add_photo (f, a, 2);
  g_autofree char *p3 = add_photo (f, a, 3);
  g_autoptr(MpTestSse) sse = open_stream (f, token, "0");
  g_autofree char *after_first = NULL;
  gint64 id1, id2, id3;
  guint status = 0;

  id1 = expect_event (sse, "photo.created", p1);
  id2 = expect_event (sse, "photo.created", p2);
  id3 = expect_event (sse, "photo.created", p3);
  g_assert_cmpint (id1, <, id2);
  g_assert_cmpint (id2, <, id3);
  g_clear_pointer (&sse, mp_test_sse_close);

  /* From the middle: only what followed, then live events on the same stream. */
  after_first = g_strdup_printf ("%" G_GINT64_FORMAT, id1);
  sse = open_stream (f, token, after_first);
  g_assert_cmpint (expect_event (sse, "photo.created", p2), ==, id2);
  g_assert_cmpint (expect_event (sse, "photo.created", p3), ==, id3);
  {
    g_autofree char *path = g_strconcat ("/v1/photos/", p1, NULL);
    g_autoptr(JsonNode) node = call (f, "DELETE", path, token, NULL, &status);

    g_assert_cmpuint (status, ==, 204);
  }
  g_assert_cmpint (expect_event (sse, "photo.deleted", p1), >, id3);
  g_clear_pointer (&sse, mp_test_sse_close);

  /* The other identity's photo, registered between p1 and p2, never showed up above. */
  g_assert_nonnull (o1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/sse/event", test_sse_event);
  g_test_add_func ("/srv/sse/last-event-id", test_sse_last_event_id);
  g_test_add ("/srv/events/errors", Fixture, NULL,
              fixture_setup, test_events_errors, fixture_teardown);
  g_test_add ("/srv/events/live", Fixture, NULL,
              fixture_setup, test_events_live, fixture_teardown);
  g_test_add ("/srv/events/resume", Fixture, NULL,
              fixture_setup, test_events_resume, fixture_teardown);
  return g_test_run ();
}
