/* srv-tags.c - from class probabilities to tags: top-k, thresholds, aliases, priorities */
#include "config.h"

#include "srv-tags.h"

#include "nn-labels.h"

#include <gio/gio.h>
#include <math.h>
#include <string.h>

typedef struct {
  char     *alias;      /* NULL: keep the label */
  double    threshold;  /* < 0: the global minimum */
  int       priority;
  gboolean  ignore;
} Rule;

struct _SrvTagRules {
  GHashTable *by_label;  /* casefolded label → Rule */
};

typedef struct {
  char   *label;
  double  confidence;
  int     priority;
} Candidate;

static void
rule_free (gpointer data)
{
  Rule *rule = data;

  g_free (rule->alias);
  g_free (rule);
}

static char *
fold (const char *label)
{
  g_autofree char *stripped = g_strstrip (g_strdup (label));

  return g_utf8_casefold (stripped, -1);
}

SrvTagRules *
srv_tag_rules_new_from_data (const char  *data,
                             gsize        length,
                             GError     **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_auto(GStrv) groups = NULL;
  SrvTagRules *rules;

  if (!g_key_file_load_from_data (kf, data, length, G_KEY_FILE_NONE, error))
    return NULL;
  rules = g_new0 (SrvTagRules, 1);
  rules->by_label = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, rule_free);
  groups = g_key_file_get_groups (kf, NULL);
  for (char **g = groups; *g; g++)
    {
      g_auto(GStrv) keys = g_key_file_get_keys (kf, *g, NULL, NULL);
      Rule *rule = g_new0 (Rule, 1);

      rule->threshold = -1;
      g_hash_table_replace (rules->by_label, fold (*g), rule);
      for (char **k = keys; k && *k; k++)
        {
          g_autoptr(GError) local_error = NULL;

          if (strcmp (*k, "alias") == 0)
            {
              g_autofree char *alias = g_key_file_get_string (kf, *g, *k, &local_error);

              if (alias != NULL && *g_strstrip (alias) != '\0')
                rule->alias = g_steal_pointer (&alias);
            }
          else if (strcmp (*k, "threshold") == 0)
            {
              rule->threshold = g_key_file_get_double (kf, *g, *k, &local_error);
              if (local_error == NULL && !(rule->threshold >= 0.0 && rule->threshold <= 1.0))
                g_set_error (&local_error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                             "threshold must be from 0 to 1");
            }
          else if (strcmp (*k, "priority") == 0)
            rule->priority = g_key_file_get_integer (kf, *g, *k, &local_error);
          else if (strcmp (*k, "ignore") == 0)
            rule->ignore = g_key_file_get_boolean (kf, *g, *k, &local_error);
          else
            g_set_error (&local_error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "unknown key (use alias, threshold, priority, ignore)");
          if (local_error != NULL)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "tag rules [%s] %s: %s",
                           *g, *k, local_error->message);
              srv_tag_rules_free (rules);
              return NULL;
            }
        }
    }
  return rules;
}

SrvTagRules *
srv_tag_rules_load (const char  *path,
                    GError     **error)
{
  g_autofree char *contents = NULL;
  gsize length;
  SrvTagRules *rules;

  if (!g_file_get_contents (path, &contents, &length, error))
    return NULL;
  rules = srv_tag_rules_new_from_data (contents, length, error);
  if (rules == NULL)
    g_prefix_error (error, "%s: ", path);
  return rules;
}

void
srv_tag_rules_free (SrvTagRules *rules)
{
  if (rules == NULL)
    return;
  g_hash_table_unref (rules->by_label);
  g_free (rules);
}

static int
candidate_cmp (gconstpointer a,
               gconstpointer b)
{
  const Candidate *x = a, *y = b;

  if (x->priority != y->priority)
    return x->priority > y->priority ? -1 : 1;
  if (x->confidence != y->confidence)
    return x->confidence > y->confidence ? -1 : 1;
  return g_strcmp0 (x->label, y->label);
}

GArray *
srv_tags_from_probabilities (const float        *probabilities,
                             guint               n,
                             const char * const *labels,
                             const SrvTagRules  *rules,
                             double              min_confidence,
                             guint               top_k)
{
  g_autoptr(GArray) cands = g_array_new (FALSE, FALSE, sizeof (Candidate));
  g_autoptr(GHashTable) index = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  guint n_labels = labels ? g_strv_length ((char **) labels) : 0;
  GArray *tags = srv_tag_array_new ();

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = i < n_labels ? nn_label_short_name (labels[i])
                                           : g_strdup_printf ("%u", i);
      g_autofree char *key = fold (name);
      const Rule *rule = rules ? g_hash_table_lookup (rules->by_label, key) : NULL;
      double threshold = rule && rule->threshold >= 0 ? rule->threshold : min_confidence;
      double p = probabilities[i];
      gpointer found;

      if (rule && rule->ignore)
        continue;
      if (!(p >= threshold) || p <= 0.0)
        continue;
      if (rule && rule->alias)
        {
          g_free (name);
          name = g_strdup (rule->alias);
          g_free (key);
          key = fold (name);
        }
      if (g_hash_table_lookup_extended (index, key, NULL, &found))
        {
          /* classes of one softmax are exclusive, so the alias's probability is their sum */
          Candidate *c = &g_array_index (cands, Candidate, GPOINTER_TO_UINT (found));

          c->confidence = MIN (1.0, c->confidence + p);
          c->priority = MAX (c->priority, rule ? rule->priority : 0);
        }
      else
        {
          Candidate c = { g_steal_pointer (&name), p, rule ? rule->priority : 0 };

          g_array_append_val (cands, c);
          g_hash_table_insert (index, g_steal_pointer (&key), GUINT_TO_POINTER (cands->len - 1));
        }
    }
  g_array_sort (cands, candidate_cmp);
  for (guint i = 0; i < cands->len; i++)
    {
      Candidate *c = &g_array_index (cands, Candidate, i);

      if (tags->len < top_k)
        {
          SrvTag t = { g_steal_pointer (&c->label), c->confidence };

          g_array_append_val (tags, t);
        }
      g_free (c->label);
    }
  return tags;
}
