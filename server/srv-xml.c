/* srv-xml.c - a small read-only tree over S3 and STS response XML, built with GMarkup */
#include "config.h"

#include "srv-xml.h"

#include <string.h>

typedef struct {
  SrvXmlNode *root;
  GPtrArray  *stack;    /* open elements, borrowed from the tree */
} Builder;

static SrvXmlNode *
node_new (const char *qualified)
{
  SrvXmlNode *node = g_new0 (SrvXmlNode, 1);
  const char *colon = strchr (qualified, ':');

  node->name = g_strdup (colon ? colon + 1 : qualified);
  node->text = g_string_new (NULL);
  node->children = g_ptr_array_new_with_free_func ((GDestroyNotify) srv_xml_free);
  return node;
}

void
srv_xml_free (SrvXmlNode *node)
{
  if (node == NULL)
    return;
  g_free (node->name);
  g_string_free (node->text, TRUE);
  g_ptr_array_unref (node->children);
  g_free (node);
}

static void
start_cb (GMarkupParseContext  *context,
          const char           *element_name,
          const char          **attribute_names,
          const char          **attribute_values,
          gpointer              user_data,
          GError              **error)
{
  Builder *b = user_data;
  SrvXmlNode *node;

  if (b->stack->len >= SRV_XML_MAX_DEPTH)
    {
      g_set_error (error, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT,
                   "elements nested deeper than %d", SRV_XML_MAX_DEPTH);
      return;
    }
  node = node_new (element_name);
  if (b->stack->len == 0)
    {
      if (b->root != NULL)
        {
          srv_xml_free (node);
          g_set_error (error, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT,
                       "more than one root element");
          return;
        }
      b->root = node;
    }
  else
    g_ptr_array_add (((SrvXmlNode *) g_ptr_array_index (b->stack, b->stack->len - 1))->children,
                     node);
  g_ptr_array_add (b->stack, node);
}

static void
end_cb (GMarkupParseContext  *context,
        const char           *element_name,
        gpointer              user_data,
        GError              **error)
{
  Builder *b = user_data;

  g_ptr_array_set_size (b->stack, b->stack->len - 1);
}

static void
text_cb (GMarkupParseContext  *context,
         const char           *text,
         gsize                 len,
         gpointer              user_data,
         GError              **error)
{
  Builder *b = user_data;

  if (b->stack->len > 0)
    g_string_append_len (((SrvXmlNode *) g_ptr_array_index (b->stack, b->stack->len - 1))->text,
                         text, len);
}

SrvXmlNode *
srv_xml_parse (const char  *xml,
               gsize        len,
               GError     **error)
{
  static const GMarkupParser parser = { start_cb, end_cb, text_cb, NULL, NULL };
  Builder b = { NULL, g_ptr_array_new () };
  g_autoptr(GMarkupParseContext) context = NULL;
  gboolean ok;

  g_return_val_if_fail (xml != NULL || len == 0, NULL);

  if (len > SRV_XML_MAX_BYTES)
    {
      g_ptr_array_unref (b.stack);
      g_set_error (error, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT,
                   "document of %" G_GSIZE_FORMAT " bytes is over the limit of %d", len,
                   SRV_XML_MAX_BYTES);
      return NULL;
    }
  context = g_markup_parse_context_new (&parser, G_MARKUP_TREAT_CDATA_AS_TEXT, &b, NULL);
  ok = g_markup_parse_context_parse (context, xml, len, error) &&
       g_markup_parse_context_end_parse (context, error);
  g_ptr_array_unref (b.stack);
  if (ok && b.root == NULL)
    {
      g_set_error (error, G_MARKUP_ERROR, G_MARKUP_ERROR_EMPTY, "no root element");
      ok = FALSE;
    }
  if (!ok)
    {
      srv_xml_free (b.root);
      return NULL;
    }
  return b.root;
}

SrvXmlNode *
srv_xml_child (const SrvXmlNode *node,
               const char       *name)
{
  g_return_val_if_fail (node != NULL && name != NULL, NULL);
  for (guint i = 0; i < node->children->len; i++)
    {
      SrvXmlNode *child = g_ptr_array_index (node->children, i);

      if (strcmp (child->name, name) == 0)
        return child;
    }
  return NULL;
}

const char *
srv_xml_child_text (const SrvXmlNode *node,
                    const char       *name)
{
  SrvXmlNode *child = srv_xml_child (node, name);

  return child ? child->text->str : NULL;
}
