/*
 * What the two system-call addons (packet_stats.c, nft_netlink.c) share:
 * errors thrown with errno's text under one code, and the file descriptor
 * argument most of their functions take.
 */
#ifndef SKNOCK_DESCRIPTOR_ADDON_H
#define SKNOCK_DESCRIPTOR_ADDON_H

#include <node_api.h>
#include <stdio.h>
#include <string.h>

static inline napi_value throw_errno(napi_env env, const char *code, const char *what, int error) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(error));
  napi_throw_error(env, code, message);
  return NULL;
}

/* The first argument as a descriptor; false (with a TypeError thrown that shows `usage`) when it is none. */
static inline bool descriptor_argument(napi_env env, napi_callback_info info, const char *usage, int32_t *descriptor) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1 && napi_get_value_int32(env, argv[0], descriptor) == napi_ok) return true;
  napi_throw_type_error(env, "SKNOCK_NATIVE_ARGUMENT", usage);
  return false;
}

#endif
