/*
 * A NETLINK_NETFILTER socket for the root firewall helper: it sends one
 * nf_tables batch that server/firewall/nft-netlink.ts encoded and hands
 * back the kernel's replies as bytes for that module to decode. A grant
 * this way costs one system call instead of a line through `nft -i`
 * (parsing, a cache refresh from the kernel and the reply, ≈ 0.5 ms).
 * nfnetlink runs a batch inside sendmsg(), so its acknowledgements are
 * queued by the time it returns; the poll below only guards against a
 * kernel that defers them. The socket belongs to the network namespace of
 * the thread that opens it, and every check of CAP_NET_ADMIN is the
 * kernel's.
 */
#include "descriptor_addon.h"
#include <errno.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A grant transaction has at most six acknowledgements of ≈ 36 bytes (NETLINK_CAP_ACK), a refusal some text more. */
#define REPLY_BUFFER_LENGTH (32 * 1024)
#define REPLY_WAIT_MS 1000

#define NETLINK_ERROR "SKNOCK_NFT_NETLINK"

static napi_value int_value(napi_env env, int32_t number) {
  napi_value value;
  napi_create_int32(env, number, &value);
  return value;
}

/* openNetfilterSocket(): a bound NETLINK_NETFILTER descriptor with short acknowledgements and error text. */
static napi_value open_netfilter_socket(napi_env env, napi_callback_info info) {
  (void)info;
  int descriptor = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (descriptor < 0) return throw_errno(env, NETLINK_ERROR, "netlink socket", errno);
  struct sockaddr_nl local;
  memset(&local, 0, sizeof local);
  local.nl_family = AF_NETLINK;
  int on = 1;
  /* Acknowledgements without the request echoed back, and the kernel's error message when it gives one. */
  if (bind(descriptor, (struct sockaddr *)&local, sizeof local) != 0 ||
      setsockopt(descriptor, SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on) != 0 ||
      setsockopt(descriptor, SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on) != 0) {
    int error = errno;
    close(descriptor);
    return throw_errno(env, NETLINK_ERROR, "netlink socket setup", error);
  }
  return int_value(env, descriptor);
}

/*
 * How many NLMSG_ERROR messages (acknowledgements included) `bytes` holds;
 * *refused becomes true when one of them carries an error: the transaction
 * failed, and the acknowledgements still missing will not come.
 */
static size_t count_acknowledgements(const unsigned char *bytes, size_t length, bool *refused) {
  size_t count = 0;
  size_t offset = 0;
  while (offset + sizeof(struct nlmsghdr) <= length) {
    struct nlmsghdr header;
    memcpy(&header, bytes + offset, sizeof header);
    if (header.nlmsg_len < sizeof header || header.nlmsg_len > length - offset) break;
    if (header.nlmsg_type == NLMSG_ERROR) {
      count++;
      int32_t error = 0;
      if (header.nlmsg_len >= sizeof header + sizeof error) memcpy(&error, bytes + offset + sizeof header, sizeof error);
      if (error != 0) *refused = true;
    }
    offset += NLMSG_ALIGN(header.nlmsg_len);
  }
  return count;
}

static long milliseconds_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/*
 * transact(descriptor, request, expectedAcknowledgements): sends `request`
 * to the kernel and returns every reply datagram received, concatenated,
 * once that many acknowledgements arrived, once the queue is empty after an
 * error, or after REPLY_WAIT_MS.
 */
static napi_value transact(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t descriptor = -1;
  uint32_t expected = 0;
  void *request = NULL;
  size_t request_length = 0;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || napi_get_value_int32(env, argv[0], &descriptor) != napi_ok ||
      napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[1], &request, &request_length) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &expected) != napi_ok) {
    napi_throw_type_error(env, "SKNOCK_NATIVE_ARGUMENT", "transact(descriptor, request Buffer, expectedAcknowledgements)");
    return NULL;
  }
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do sent = sendto(descriptor, request, request_length, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return throw_errno(env, NETLINK_ERROR, "netlink send", errno);
  if ((size_t)sent != request_length) return throw_errno(env, NETLINK_ERROR, "netlink send (short)", EMSGSIZE);

  unsigned char replies[REPLY_BUFFER_LENGTH];
  size_t received = 0;
  size_t acknowledged = 0;
  bool refused = false;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (acknowledged < expected && received < REPLY_BUFFER_LENGTH) {
    ssize_t length = recv(descriptor, replies + received, REPLY_BUFFER_LENGTH - received, MSG_DONTWAIT);
    if (length > 0) {
      acknowledged += count_acknowledgements(replies + received, (size_t)length, &refused);
      received += (size_t)length;
      continue;
    }
    if (length < 0 && errno == EINTR) continue;
    if (refused) break; /* everything queued is read: nothing more will come for a refused batch */
    if (length < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return throw_errno(env, NETLINK_ERROR, "netlink receive", errno);
    long waited = milliseconds_since(&start);
    if (waited >= REPLY_WAIT_MS) break;
    struct pollfd readable = {.fd = descriptor, .events = POLLIN, .revents = 0};
    poll(&readable, 1, (int)(REPLY_WAIT_MS - waited));
  }
  napi_value result;
  if (napi_create_buffer_copy(env, received, replies, NULL, &result) != napi_ok) return throw_errno(env, NETLINK_ERROR, "netlink reply copy", ENOMEM);
  return result;
}

/* closeNetfilterSocket(descriptor) */
static napi_value close_netfilter_socket(napi_env env, napi_callback_info info) {
  int32_t descriptor = -1;
  if (!descriptor_argument(env, info, "closeNetfilterSocket(descriptor) takes a file descriptor", &descriptor)) return NULL;
  close(descriptor);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor methods[] = {
      {"openNetfilterSocket", NULL, open_netfilter_socket, NULL, NULL, NULL, napi_default, NULL},
      {"transact", NULL, transact, NULL, NULL, NULL, napi_default, NULL},
      {"closeNetfilterSocket", NULL, close_netfilter_socket, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods);
  return exports;
}
