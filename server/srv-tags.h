/* srv-tags.h - from a classifier's class probabilities to a photo's tags
 *
 * Top-k with a global minimum confidence, refined by an optional rules file after PhotoPrism's
 * rules.yml: per label a threshold, an alias (several classes becoming one tag, their
 * confidences added) and a priority (higher first); `ignore=true` drops a label. The file is a
 * GKeyFile with one group per label, as the model names it (case ignored):
 *
 *   [tabby]
 *   alias=cat
 *   [web site]
 *   ignore=true
 *   [golden retriever]
 *   threshold=0.3
 *   priority=2
 */
#pragma once

#include <glib.h>

#include "srv-db.h"

G_BEGIN_DECLS

typedef struct _SrvTagRules SrvTagRules;

/* Returns NULL and sets @error (G_KEY_FILE_ERROR, or G_IO_ERROR_INVALID_DATA for an unknown
 * key or a value out of range, naming the group) when the rules do not parse. */
SrvTagRules *srv_tag_rules_new_from_data (const char         *data,
                                          gsize               length,
                                          GError            **error);
SrvTagRules *srv_tag_rules_load          (const char         *path,
                                          GError            **error);
void         srv_tag_rules_free          (SrvTagRules        *rules);


/* SrvTag array (srv_tag_array_new()), best first: classes at or over their threshold (the
 * rule's, else @min_confidence), renamed and merged by alias, sorted by priority then
 * confidence, at most @top_k. @labels may be NULL or shorter than @n: the class index is
 * the label then. @rules may be NULL. */
GArray      *srv_tags_from_probabilities (const float        *probabilities,
                                          guint               n,
                                          const char * const *labels,
                                          const SrvTagRules  *rules,
                                          double              min_confidence,
                                          guint               top_k);


G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvTagRules, srv_tag_rules_free)

G_END_DECLS
