/* srv-remote.h - SigV4-signed HTTP requests to a remote AWS-style service (S3, STS)
 *
 * One endpoint, one key pair, one region, one libsoup session. Calls are blocking and may be
 * made from any thread (libsoup >= 3.2 sends from any thread); create and free the remote on
 * the same thread. The store's "s3" backend and the STS client are built on it.
 */
#pragma once

#include <libsoup/soup.h>

#include "mp-sigv4.h"

G_BEGIN_DECLS

/* Without an answer for this long, a request fails: the store retries, clients see 503. */
#define SRV_REMOTE_TIMEOUT_S        60
/* Error documents are a few hundred bytes; more is not an error document. */
#define SRV_REMOTE_ERROR_BODY_MAX   (64 * 1024)

typedef struct _SrvRemote SrvRemote;

typedef struct {
  const char          *method;
  const char          *host;          /* NULL: the endpoint's; "bucket.host" for virtual hosting */
  const char          *path;          /* percent-encoded, appended to the endpoint's own path */
  const char          *query;         /* raw and encoded, without '?'; NULL for none */
  const MpSigv4Header *headers;       /* sent and signed, besides host and the x-amz-* ones */
  gsize                n_headers;
  const char          *service;       /* SigV4 service: "s3" or "sts" */
  MpSigv4Flags         flags;
  GBytes              *body;          /* a small body, signed with its hash; or ... */
  GInputStream        *body_stream;   /* ... a large one, sent as UNSIGNED-PAYLOAD */
  gint64               body_size;     /* of @body_stream */
  const char          *content_type;
} SrvRemoteRequest;

/* Returns NULL and sets @error when @endpoint is not an http(s) URL with a host. */
SrvRemote    *srv_remote_new         (const char              *endpoint,
                                      const char              *region,
                                      const char              *access_key_id,
                                      const char              *secret_access_key,
                                      GError                 **error);
void          srv_remote_free        (SrvRemote               *remote);
const char   *srv_remote_endpoint    (SrvRemote               *remote);
/* The endpoint's host as the Host header carries it: name, name:port, [v6]:port. */
const char   *srv_remote_host        (SrvRemote               *remote);

/* Signs and sends @request. Returns the response body stream and *@message (status and
 * headers), whatever the status; NULL with @error (G_IO_ERROR, G_RESOLVER_ERROR, ...) only
 * when no response arrived. */
GInputStream *srv_remote_send        (SrvRemote               *remote,
                                      const SrvRemoteRequest  *request,
                                      SoupMessage            **message,
                                      GCancellable            *cancellable,
                                      GError                 **error);
/* Reads @in to its end into memory; fails with G_IO_ERROR_MESSAGE_TOO_LARGE past @max bytes. */
GBytes       *srv_remote_read_all    (GInputStream            *in,
                                      gsize                    max,
                                      GCancellable            *cancellable,
                                      GError                 **error);
/* The Code and Message of an AWS error document (<Error> at the root or under
 * <ErrorResponse>), or FALSE when @body is not one. */
gboolean      srv_remote_parse_error (GBytes                  *body,
                                      char                   **code,
                                      char                   **message);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvRemote, srv_remote_free)

G_END_DECLS
