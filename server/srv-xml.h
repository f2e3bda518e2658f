/* srv-xml.h - a small read-only tree over the XML that S3 and STS answer with
 *
 * Their responses are shallow documents of named elements with text (ListBucketResult,
 * AssumeRoleResponse, Error); GMarkup parses them into this tree and callers pick children
 * by name. Namespaces are ignored, as every S3 client does.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Bodies above this are refused: a 1000-key listing is about 300 KB. */
#define SRV_XML_MAX_BYTES  (8 * 1024 * 1024)
#define SRV_XML_MAX_DEPTH  16

typedef struct _SrvXmlNode SrvXmlNode;

struct _SrvXmlNode {
  char       *name;       /* local name, without any "prefix:" */
  GString    *text;       /* the element's own character data */
  GPtrArray  *children;   /* SrvXmlNode, in document order */
};

/* Returns the root element, or NULL with G_MARKUP_ERROR when @xml is not well-formed, too
 * large or too deep. */
SrvXmlNode *srv_xml_parse      (const char        *xml,
                                gsize              len,
                                GError           **error);
void        srv_xml_free       (SrvXmlNode        *node);
/* The first child element called @name, or NULL. */
SrvXmlNode *srv_xml_child      (const SrvXmlNode  *node,
                                const char        *name);
/* The text of the first child called @name (whitespace kept), or NULL when there is none. */
const char *srv_xml_child_text (const SrvXmlNode  *node,
                                const char        *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvXmlNode, srv_xml_free)

G_END_DECLS
