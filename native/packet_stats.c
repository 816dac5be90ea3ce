/*
 * How many packets the kernel dropped because a capture ring was full.
 * libpcap keeps its AF_PACKET sockets to itself and the cap addon exposes
 * neither the descriptors nor pcap_stats(), so this module finds the
 * process's packet sockets (listPacketSockets: a snapshot before and after
 * opening a capture tells which are its own) and reads PACKET_STATISTICS on
 * them (readPacketStatistics). The kernel resets those counters on every
 * read; nothing else reads them here (libpcap does only in pcap_stats(),
 * which cap never calls), so the caller adds the reads up.
 */
#include "descriptor_addon.h"
#include <dirent.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_PACKET_SOCKETS 256

#define STATISTICS_ERROR "SKNOCK_PACKET_STATISTICS"

static int is_packet_socket(int descriptor) {
  int domain = 0;
  socklen_t length = sizeof domain;
  return getsockopt(descriptor, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 && domain == AF_PACKET;
}

/* The descriptors of this process's AF_PACKET sockets, ascending. */
static napi_value list_packet_sockets(napi_env env, napi_callback_info info) {
  (void)info;
  DIR *folder = opendir("/proc/self/fd");
  if (folder == NULL) return throw_errno(env, STATISTICS_ERROR, "cannot list /proc/self/fd", errno);
  int found[MAX_PACKET_SOCKETS];
  size_t count = 0;
  int own = dirfd(folder);
  for (struct dirent *entry = readdir(folder); entry != NULL && count < MAX_PACKET_SOCKETS; entry = readdir(folder)) {
    char *end = NULL;
    long descriptor = strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || descriptor == own) continue;
    if (is_packet_socket((int)descriptor)) found[count++] = (int)descriptor;
  }
  closedir(folder);
  napi_value result;
  napi_create_array_with_length(env, count, &result);
  for (size_t index = 0; index < count; index++) {
    napi_value value;
    napi_create_int32(env, found[index], &value);
    napi_set_element(env, result, (uint32_t)index, value);
  }
  return result;
}

/* { packets, drops } since the last read (the kernel resets them); throws for a descriptor that is no packet socket. */
static napi_value read_packet_statistics(napi_env env, napi_callback_info info) {
  int32_t descriptor = -1;
  if (!descriptor_argument(env, info, "readPacketStatistics(descriptor) takes a file descriptor", &descriptor)) return NULL;
  if (!is_packet_socket(descriptor)) return throw_errno(env, STATISTICS_ERROR, "not a packet socket", errno != 0 ? errno : ENOTSOCK);
  /* TPACKET_V3 sockets answer with tpacket_stats_v3, older ones with its first two fields. */
  struct tpacket_stats_v3 statistics;
  memset(&statistics, 0, sizeof statistics);
  socklen_t length = sizeof statistics;
  if (getsockopt(descriptor, SOL_PACKET, PACKET_STATISTICS, &statistics, &length) != 0) return throw_errno(env, STATISTICS_ERROR, "PACKET_STATISTICS", errno);
  napi_value result, packets, drops;
  napi_create_object(env, &result);
  napi_create_uint32(env, statistics.tp_packets, &packets);
  napi_create_uint32(env, statistics.tp_drops, &drops);
  napi_set_named_property(env, result, "packets", packets);
  napi_set_named_property(env, result, "drops", drops);
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor methods[] = {
      {"listPacketSockets", NULL, list_packet_sockets, NULL, NULL, NULL, napi_default, NULL},
      {"readPacketStatistics", NULL, read_packet_statistics, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods);
  return exports;
}
