/* test-tags.c - class probabilities to tags: top-k, minimum confidence, rules */
#include "config.h"

#include <gio/gio.h>
#include <string.h>

#include "srv-tags.h"
#include "nn-labels.h"

static const char *labels[] = {
  "n02123045 tabby, tabby cat",
  "n02123159 tiger cat",
  "n02124075 Egyptian cat",
  "n02099601 golden retriever",
  "n06359193 web site, website, internet site, site",
  "plain label",
  NULL,
};

static void
assert_tag (GArray *tags, guint i, const char *label, double confidence)
{
  g_assert_cmpuint (i, <, tags->len);
  g_assert_cmpstr (g_array_index (tags, SrvTag, i).label, ==, label);
  g_assert_cmpfloat_with_epsilon (g_array_index (tags, SrvTag, i).confidence, confidence, 1e-6);
}

static void
test_label_name (void)
{
  static const char *cases[][2] = {
    { "n02123045 tabby, tabby cat", "tabby" },
    { "n06359193 web site, website", "web site" },
    { "golden retriever", "golden retriever" },
    { "  cat  ", "cat" },
    { "n0212304 short", "n0212304 short" },
    { "nXXXXXXXX x", "nXXXXXXXX x" },
    { "", "" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *name = nn_label_short_name (cases[i][0]);
      g_assert_cmpstr (name, ==, cases[i][1]);
    }
}

static void
test_top_k_and_minimum (void)
{
  const float p[] = { 0.30f, 0.25f, 0.05f, 0.20f, 0.15f, 0.05f, 0.0f };
  g_autoptr(GArray) all = srv_tags_from_probabilities (p, 7, labels, NULL, 0.0, 20);
  g_autoptr(GArray) top2 = srv_tags_from_probabilities (p, 7, labels, NULL, 0.0, 2);
  g_autoptr(GArray) min = srv_tags_from_probabilities (p, 7, labels, NULL, 0.2, 20);
  g_autoptr(GArray) none = srv_tags_from_probabilities (p, 7, labels, NULL, 0.9, 20);
  g_autoptr(GArray) nolabels = srv_tags_from_probabilities (p, 7, NULL, NULL, 0.2, 20);

  /* the class without probability never becomes a tag; the label past the list is its index */
  g_assert_cmpuint (all->len, ==, 6);
  assert_tag (all, 0, "tabby", 0.30);
  assert_tag (all, 1, "tiger cat", 0.25);
  assert_tag (all, 2, "golden retriever", 0.20);
  assert_tag (all, 3, "web site", 0.15);
  g_assert_cmpuint (top2->len, ==, 2);
  assert_tag (top2, 1, "tiger cat", 0.25);
  /* the minimum is inclusive */
  g_assert_cmpuint (min->len, ==, 3);
  assert_tag (min, 2, "golden retriever", 0.20);
  g_assert_cmpuint (none->len, ==, 0);
  g_assert_cmpuint (nolabels->len, ==, 3);
  assert_tag (nolabels, 0, "0", 0.30);
  assert_tag (nolabels, 2, "3", 0.20);
}

static void
test_rules (void)
{
  const char *text =
    "# cats are cats\n"
    "[tabby]\nalias=cat\n"
    "[Tiger Cat]\nalias=cat\n"
    "[egyptian cat]\nalias=cat\nthreshold=0.01\n"
    "[web site]\nignore=true\n"
    "[golden retriever]\nthreshold=0.5\n"
    "[plain label]\npriority=5\nthreshold=0.04\n";
  const float p[] = { 0.30f, 0.25f, 0.05f, 0.20f, 0.15f, 0.05f };
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvTagRules) rules = srv_tag_rules_new_from_data (text, -1, &error);
  g_autoptr(GArray) tags = NULL;

  g_assert_no_error (error);
  tags = srv_tags_from_probabilities (p, 6, labels, rules, 0.1, 5);
  /* priority first, whatever the confidence; three cat classes merge into one "cat" with the
   * sum (Egyptian cat counts thanks to its own low threshold); the retriever misses its 0.5,
   * the web site is ignored */
  g_assert_cmpuint (tags->len, ==, 2);
  assert_tag (tags, 0, "plain label", 0.05);
  assert_tag (tags, 1, "cat", 0.60);
}

static void
test_bad_rules (void)
{
  static const char *bad[] = {
    "[cat]\nthreshold=2\n",
    "[cat]\nthreshold=-0.1\n",
    "[cat]\nthreshold=high\n",
    "[cat]\npriority=first\n",
    "[cat]\nignore=maybe\n",
    "[cat]\nthreshhold=0.2\n",
    "not a key file",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvTagRules) rules = srv_tag_rules_new_from_data (bad[i], -1, &error);

      g_assert_null (rules);
      g_assert_nonnull (error);
      if (i < 6)
        g_assert_nonnull (strstr (error->message, "[cat]"));
    }
}

static void
test_softmax (void)
{
  const float dist[] = { 0.1f, 0.7f, 0.2f };
  const float logits[] = { 1.0f, 3.0f, 1.0f };
  float out[3];

  nn_scores_to_probabilities (dist, 3, out);
  g_assert_cmpfloat (out[1], ==, 0.7f);
  nn_scores_to_probabilities (logits, 3, out);
  g_assert_cmpfloat_with_epsilon (out[0] + out[1] + out[2], 1.0, 1e-6);
  g_assert_cmpfloat_with_epsilon (out[1], 0.786986, 1e-5);
  g_assert_cmpfloat (out[0], ==, out[2]);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/tags/label-name", test_label_name);
  g_test_add_func ("/srv/tags/top-k-and-minimum", test_top_k_and_minimum);
  g_test_add_func ("/srv/tags/rules", test_rules);
  g_test_add_func ("/srv/tags/bad-rules", test_bad_rules);
  g_test_add_func ("/srv/tags/softmax", test_softmax);
  return g_test_run ();
}
