/* fuzz-fixture.h - the fixed keys and clock the SigV4 targets and make-seeds.c share, so that
 * the committed seeds carry signatures and session tokens the targets accept */
#pragma once

#include <string.h>

#include "mp-sigv4.h"
#include "srv-token.h"

#define FUZZ_AKID   "AKIDFUZZFUZZFUZZFUZZ"
#define FUZZ_SECRET "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz"
#define FUZZ_REGION "us-east-1"
#define FUZZ_NOW    1700000000  /* 2023-11-14T22:13:20Z */

/* A keyring holding one key (id 1, every byte 0x5a), as a server's would. */
static inline SrvKeyring *
fuzz_keyring_new (void)
{
  SrvKeyring *keyring = srv_keyring_new ();
  guint8 key[32];

  memset (key, 0x5a, sizeof key);
  srv_keyring_add_key (keyring, 1, key, FUZZ_NOW - 3600, 0);
  return keyring;
}

static inline const MpSigv4SigningParams *
fuzz_signing_params (void)
{
  static const MpSigv4SigningParams params = {
    FUZZ_AKID, FUZZ_SECRET, NULL, FUZZ_REGION, "s3", FUZZ_NOW, MP_SIGV4_FLAGS_S3
  };

  return &params;
}

/* The signed head of the aws-chunked upload the chunk signatures chain from. */
static inline MpSigv4Signed *
fuzz_chunked_seed (void)
{
  static const MpSigv4Header headers[] = {
    { "host", "127.0.0.1" },
    { "x-amz-decoded-content-length", "0" },
  };
  MpSigv4Request request = { "PUT", "/magpie/users/fuzz/x", NULL, headers,
                             G_N_ELEMENTS (headers), MP_SIGV4_STREAMING_PAYLOAD };

  return mp_sigv4_sign (&request, fuzz_signing_params (), NULL);
}
