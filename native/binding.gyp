{
  "targets": [
    {
      "target_name": "sknock_p256",
      "sources": ["sknock_p256.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"],
      "defines": ["OPENSSL_SUPPRESS_DEPRECATED", "NAPI_VERSION=8"]
    },
    {
      "target_name": "sknock_packet_stats",
      "sources": ["packet_stats.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "sknock_nft_netlink",
      "sources": ["nft_netlink.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
